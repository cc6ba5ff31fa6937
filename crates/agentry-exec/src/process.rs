//! The bounded process runner every built-in action goes through.
//!
//! - **argv only**: a program and its arguments, never a shell string, so `;`,
//!   `&&`, `$(…)` and backticks are just bytes in an argument.
//! - **own process group**: the child leads a new group; timeouts, cancellation and
//!   normal completion all signal the *group*, so grandchildren die too.
//! - **confined working dir**: a [`ContainedPath`], which only the root resolver
//!   can build.
//! - **environment allow-list**: the environment is cleared; only a safe `PATH`,
//!   `LANG`, explicitly allowed host keys and explicit pairs are passed.
//! - **wall timeout**: `SIGTERM` to the group, a grace period, then `SIGKILL`;
//!   exit code 124.
//! - **output caps while draining**: each stream keeps a bounded preview in memory
//!   and keeps reading past the cap (a child blocked on a full pipe would never
//!   exit); the whole stream is spilled to a file and referenced, never lost.
//! - **cancellation-safe**: dropping the future drops a guard that sends `SIGKILL`
//!   to the group.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::ExecError;
use crate::files::ContainedPath;

/// The `PATH` every child gets.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Exit code reported for a process killed by the wall timeout (as `timeout(1)`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

const CHUNK: usize = 64 * 1024;

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Time between `SIGTERM` and `SIGKILL`.
    pub grace: Duration,
    /// Bytes of stdout kept in memory.
    pub stdout_cap: usize,
    /// Bytes of stderr kept in memory.
    pub stderr_cap: usize,
    /// Bytes of one stream written to its spill file; beyond it the stream is
    /// still drained but discarded (`spill_truncated`).
    pub spill_cap: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            grace: Duration::from_millis(500),
            stdout_cap: 20_000,
            stderr_cap: 20_000,
            spill_cap: 1 << 30,
        }
    }
}

/// One process to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    argv: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    limits: Limits,
    spill_dir: Option<PathBuf>,
}

impl ProcessSpec {
    /// `argv[0]` with arguments, run in `cwd`. An empty argv is refused at run time.
    pub fn new(argv: Vec<OsString>, cwd: &ContainedPath) -> Self {
        Self::in_dir(argv, cwd.as_path().to_path_buf())
    }

    /// Same as [`new`](Self::new) for a directory the crate created itself (a scratch
    /// dir), which needs no containment.
    pub(crate) fn in_dir(argv: Vec<OsString>, cwd: PathBuf) -> Self {
        Self {
            argv,
            cwd,
            env: Vec::new(),
            stdin: None,
            limits: Limits::default(),
            spill_dir: None,
        }
    }

    /// Passes these host environment variables through when set.
    pub fn allow_env<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for k in keys {
            if let Some(v) = std::env::var_os(k.as_ref()) {
                self.env.push((k.as_ref().into(), v));
            }
        }
        self
    }

    /// Sets one variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Bytes written to stdin (stdin is `/dev/null` otherwise).
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Where full oversized output goes (created on first overflow). Without it,
    /// output past the cap is counted but not kept.
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// The argv.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }
}

/// One captured stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    /// The first bytes, up to the cap.
    #[serde(skip)]
    pub preview: Vec<u8>,
    /// Bytes the stream produced in total.
    pub total_bytes: u64,
    /// Whether `preview` is shorter than the stream.
    pub truncated: bool,
    /// The file holding the whole stream, when it overflowed and a spill dir was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill_path: Option<PathBuf>,
    /// The spill file stopped at the spill cap.
    pub spill_truncated: bool,
}

impl Captured {
    /// The preview as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.preview).into_owned()
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessOutput {
    /// Exit code; `128 + signal` when killed by a signal; 124 on timeout.
    pub exit_code: i32,
    /// Killed by the wall timeout.
    pub timed_out: bool,
    /// Stdout.
    pub stdout: Captured,
    /// Stderr.
    pub stderr: Captured,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

impl ProcessOutput {
    /// Exit code 0 and no timeout.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// Kills the process group when dropped. Armed once the child exists; this is what
/// makes dropping a run's future (cancellation, an outer timeout) kill everything it
/// started.
///
/// Signalling after the leader was reaped is safe while any member lives (a group id
/// is not reused while the group exists); once the group is empty the call fails with
/// `ESRCH`, and the pid space would have to wrap within microseconds for the id to
/// name another group.
#[derive(Debug)]
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Runs a process to completion under its limits.
///
/// ```
/// use agentry_exec::process::{run, ProcessSpec};
/// use agentry_exec::files::Root;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry_exec::ExecError> {
/// let dir = tempfile::tempdir()?;
/// let root = Root::new(dir.path())?;
/// let out = run(ProcessSpec::new(vec!["echo".into(), "a; rm -rf /".into()], &root.dir(".")?)).await?;
/// assert_eq!(out.stdout.text(), "a; rm -rf /\n");
/// # Ok(()) }
/// ```
pub async fn run(spec: ProcessSpec) -> Result<ProcessOutput, ExecError> {
    let started = Instant::now();
    let Some(program) = spec.argv.first() else {
        return Err(ExecError::EmptyCommand);
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .env("PATH", SAFE_PATH)
        .env("LANG", "C.UTF-8")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ExecError::Spawn {
        program: program.to_string_lossy().into_owned(),
        message: e.to_string(),
    })?;
    let guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    if let (Some(bytes), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
        });
    }
    let tag = unique_tag();
    let out_task = child.stdout.take().map(|s| {
        tokio::spawn(drain(
            s,
            spec.limits.stdout_cap,
            spec.limits.spill_cap,
            spec.spill_dir
                .clone()
                .map(|d| d.join(format!("stdout-{tag}.txt"))),
        ))
    });
    let err_task = child.stderr.take().map(|s| {
        tokio::spawn(drain(
            s,
            spec.limits.stderr_cap,
            spec.limits.spill_cap,
            spec.spill_dir
                .clone()
                .map(|d| d.join(format!("stderr-{tag}.txt"))),
        ))
    });

    let (status, timed_out) = match tokio::time::timeout(spec.limits.timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            guard.signal(Signal::SIGTERM);
            let status = match tokio::time::timeout(spec.limits.grace, child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    guard.signal(Signal::SIGKILL);
                    child.wait().await.ok()
                }
            };
            (status, true)
        }
    };
    // Leftover members of the group (background children) do not outlive the run.
    guard.signal(Signal::SIGKILL);
    let stdout = join_drain(out_task).await;
    let stderr = join_drain(err_task).await;
    drop(guard);
    let exit_code = if timed_out {
        TIMEOUT_EXIT_CODE
    } else {
        status.map(exit_code_of).unwrap_or(-1)
    };
    Ok(ProcessOutput {
        exit_code,
        timed_out,
        stdout,
        stderr,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

async fn join_drain(task: Option<tokio::task::JoinHandle<Captured>>) -> Captured {
    let Some(task) = task else {
        return Captured::default();
    };
    // The group is dead, so the pipe closes; a process that left the group (setsid)
    // could keep it open, and the run must still end.
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(2), task).await {
        Ok(Ok(c)) => c,
        _ => {
            abort.abort();
            Captured {
                truncated: true,
                ..Captured::default()
            }
        }
    }
}

/// Reads a stream to its end: the first `cap` bytes stay in memory, everything goes
/// to `spill` once the cap is passed (up to `spill_cap`), nothing blocks the child.
async fn drain<R: AsyncRead + Unpin>(
    mut r: R,
    cap: usize,
    spill_cap: u64,
    spill: Option<PathBuf>,
) -> Captured {
    let mut c = Captured::default();
    let mut buf = vec![0u8; CHUNK];
    let mut file: Option<tokio::fs::File> = None;
    let mut spilled: u64 = 0;
    let mut spill_failed = false;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        c.total_bytes += n as u64;
        let room = cap.saturating_sub(c.preview.len());
        if room > 0 {
            c.preview.extend_from_slice(&chunk[..room.min(n)]);
        }
        if c.total_bytes > cap as u64 {
            c.truncated = true;
            if file.is_none()
                && !spill_failed
                && let Some(path) = &spill
            {
                match open_spill(path).await {
                    Ok(mut f) => {
                        // The spill holds the whole stream: the preview first.
                        let head = &c.preview[..c.preview.len().min(cap)];
                        let already = (c.total_bytes - n as u64) as usize;
                        let head = &head[..already.min(head.len())];
                        if f.write_all(head).await.is_ok() {
                            spilled = head.len() as u64;
                            c.spill_path = Some(path.clone());
                            file = Some(f);
                        } else {
                            spill_failed = true;
                        }
                    }
                    Err(_) => spill_failed = true,
                }
            }
            if let Some(f) = file.as_mut() {
                let take = (spill_cap.saturating_sub(spilled)).min(n as u64) as usize;
                if take > 0 && f.write_all(&chunk[..take]).await.is_ok() {
                    spilled += take as u64;
                }
                if take < n {
                    c.spill_truncated = true;
                }
            }
        }
    }
    if let Some(mut f) = file {
        let _ = f.flush().await;
    }
    c
}

async fn open_spill(path: &Path) -> std::io::Result<tokio::fs::File> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
}

/// A short unique suffix for file names (time + counter; no randomness needed).
pub(crate) fn unique_tag() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{}-{n}", t, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_keeps_preview_and_spills_everything() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("out.txt");
        let c = drain(&data[..], 1000, u64::MAX, Some(path.clone())).await;
        assert_eq!(c.preview, &data[..1000]);
        assert_eq!(c.total_bytes, 300_000);
        assert!(c.truncated);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[tokio::test]
    async fn drain_respects_spill_cap() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![b'x'; 200_000];
        let path = dir.path().join("out.txt");
        let c = drain(&data[..], 10, 50_000, Some(path.clone())).await;
        assert!(c.spill_truncated);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 50_000);
        assert_eq!(c.total_bytes, 200_000);
    }
}

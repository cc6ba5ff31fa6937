//! Coding-agent actions: `list_files`, `search_files`, `read_file`, `glob_files`,
//! `grep_files`, and with write granted `write_file`, `edit_file`, `apply_patch`.
//!
//! # Read before write
//!
//! The package remembers the sha256 of every file it read *whole* (offset 0, not
//! truncated). Overwriting, editing or patching an existing file needs either that
//! read or an `expected_sha256`, and the file must still have that hash: a file
//! nobody looked at is refused with `coding.file_not_read`, one that changed on disk
//! since with `coding.file_changed`. A successful write refreshes the remembered hash.
//!
//! # Relation to the workspace file actions
//!
//! Both packages use the ids `list_files`, `search_files`, `read_file` and
//! `write_file` (the names models know). They are **alternatives**: the coding set
//! includes the read side of the file actions, and its `read_file`/`write_file` add
//! the hash tracking. [`crate::enable()`] registers only the coding set when both are
//! asked for; registering both by hand fails with `exec.registration_failed`
//! (duplicate id) rather than silently replacing one.
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agentry_actions::{ActionRegistry, SideEffect};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::SearcherBuilder;
use grep_searcher::sinks::UTF8;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ExecError;
use crate::files::{
    ContainedPath, FileOps, FilesOptions, NameGlob, ReadInput, blocking, bounded, is_binary,
    list_action, register, search_action, sha256_hex, typed, walk, write_contained,
};

/// The coding action set over one root, with its read state.
#[derive(Debug, Clone)]
pub(crate) struct Coding {
    ops: FileOps,
    read_state: Arc<Mutex<HashMap<PathBuf, String>>>,
}

/// Input of `glob_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobInput {
    /// Glob on root-relative paths (`**/*.rs`) or file names (`*.toml`).
    pub pattern: String,
    /// Directory to search.
    #[serde(default = "dot")]
    pub path: String,
    /// At most this many paths.
    #[serde(default = "two_hundred")]
    pub max_results: usize,
    /// Include dot-files.
    #[serde(default)]
    pub include_hidden: bool,
}

/// Input of `grep_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrepInput {
    /// Regular expression (or fixed text with `regex: false`).
    pub pattern: String,
    /// Directory to search.
    #[serde(default = "dot")]
    pub path: String,
    /// Treat `pattern` as a regular expression.
    #[serde(default = "yes")]
    pub regex: bool,
    /// Ignore case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Glob filter on file paths.
    #[serde(default)]
    pub glob: Option<String>,
    /// Lines of context before and after each match (at most 10).
    #[serde(default)]
    pub context_lines: usize,
    /// At most this many matches.
    #[serde(default = "fifty")]
    pub max_results: usize,
    /// Include dot-files.
    #[serde(default)]
    pub include_hidden: bool,
}

/// Input of the guarded `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuardedWriteInput {
    /// File to write.
    pub path: String,
    /// The content.
    pub content: String,
    /// Append instead of replacing.
    #[serde(default)]
    pub append: bool,
    /// The sha256 you know the file has (instead of reading it first).
    #[serde(default)]
    pub expected_sha256: Option<String>,
}

/// Input of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditInput {
    /// File to edit.
    pub path: String,
    /// Exact text to replace; must occur once unless `replace_all`.
    pub old_string: String,
    /// Replacement text.
    pub new_string: String,
    /// Replace every occurrence.
    #[serde(default)]
    pub replace_all: bool,
    /// The sha256 you know the file has (instead of reading it first).
    #[serde(default)]
    pub expected_sha256: Option<String>,
}

/// Input of `apply_patch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchInput {
    /// A unified diff (`--- a/x` / `+++ b/x` headers, `@@` hunks); several files allowed.
    pub patch: String,
    /// The files the patch must touch, exactly.
    #[serde(default)]
    pub expected_files: Option<Vec<String>>,
}

fn dot() -> String {
    ".".into()
}
fn two_hundred() -> usize {
    200
}
fn fifty() -> usize {
    50
}
fn yes() -> bool {
    true
}

/// One file's part of a multi-file patch.
#[derive(Debug)]
struct FilePatch {
    old: Option<String>,
    new: Option<String>,
    text: String,
}

fn header_path(line: &str) -> Option<String> {
    let rest = line.get(4..)?.split('\t').next()?.trim();
    if rest == "/dev/null" {
        return None;
    }
    let p = rest
        .strip_prefix("a/")
        .or_else(|| rest.strip_prefix("b/"))
        .unwrap_or(rest);
    Some(p.to_owned())
}

/// Splits a unified diff into per-file patches, dropping git's extended header
/// lines (`diff --git`, `index`, modes) that are not part of a hunk.
fn split_patch(patch: &str) -> Result<Vec<FilePatch>, ExecError> {
    let lines: Vec<&str> = patch.lines().collect();
    let mut out: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    let mut current: Option<FilePatch> = None;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with("--- ") && lines.get(i + 1).is_some_and(|n| n.starts_with("+++ ")) {
            if let Some(c) = current.take() {
                out.push(c);
            }
            let next = lines.get(i + 1).copied().unwrap_or_default();
            current = Some(FilePatch {
                old: header_path(l),
                new: header_path(next),
                text: format!("{l}\n{next}\n"),
            });
            i += 2;
            continue;
        }
        if let Some(c) = current.as_mut() {
            let hunk_line = l.starts_with("@@")
                || l.starts_with(' ')
                || l.starts_with('+')
                || l.starts_with('-')
                || l.starts_with('\\');
            if hunk_line {
                c.text.push_str(l);
                c.text.push('\n');
            } else if l.is_empty() {
                // Editors strip the space of empty context lines.
                c.text.push_str(" \n");
            } else if let Some(done) = current.take() {
                out.push(done);
            }
        }
        i += 1;
    }
    if let Some(c) = current.take() {
        out.push(c);
    }
    if out.is_empty() {
        return Err(ExecError::PatchInvalid(
            "no `--- ` / `+++ ` file headers found".into(),
        ));
    }
    Ok(out)
}

impl Coding {
    pub(crate) fn new(opts: FilesOptions) -> Self {
        Self {
            ops: FileOps::new(opts),
            read_state: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn remember(&self, path: PathBuf, sha: String) {
        if let Ok(mut s) = self.read_state.lock() {
            s.insert(path, sha);
        }
    }

    /// The freshness guard. Returns the current content (None if missing).
    fn fresh(
        &self,
        p: &ContainedPath,
        expected: Option<&str>,
    ) -> Result<Option<Vec<u8>>, ExecError> {
        let current = match std::fs::read(p.as_path()) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let found = current.as_deref().map(sha256_hex);
        match (expected, &found) {
            (Some(exp), Some(f)) if exp.eq_ignore_ascii_case(f) => return Ok(current),
            (Some(exp), _) => {
                return Err(ExecError::FileChanged {
                    path: p.relative().into(),
                    expected: exp.into(),
                    found: found.unwrap_or_else(|| "<missing>".into()),
                });
            }
            (None, None) => return Ok(None),
            (None, Some(_)) => {}
        }
        let known = self
            .read_state
            .lock()
            .ok()
            .and_then(|s| s.get(p.as_path()).cloned());
        match (known, found) {
            (None, _) => Err(ExecError::FileNotRead(p.relative().into())),
            (Some(k), Some(f)) if k == f => Ok(current),
            (Some(k), f) => Err(ExecError::FileChanged {
                path: p.relative().into(),
                expected: k,
                found: f.unwrap_or_else(|| "<missing>".into()),
            }),
        }
    }

    fn write_checked(
        &self,
        p: &ContainedPath,
        content: &[u8],
        append: bool,
    ) -> Result<Value, ExecError> {
        let v = self.ops.write(p, content, append)?;
        if let Some(sha) = v["sha256"].as_str() {
            self.remember(p.as_path().to_path_buf(), sha.to_owned());
        }
        Ok(v)
    }

    pub(crate) fn read(&self, i: ReadInput) -> Result<Value, ExecError> {
        let (v, full) = self.ops.read(i)?;
        if let Some((path, sha)) = full {
            self.remember(path, sha);
        }
        Ok(v)
    }

    pub(crate) fn glob(&self, i: GlobInput) -> Result<Value, ExecError> {
        let root = &self.ops.opts.root;
        let dir = root.resolve(&i.path)?;
        let glob = NameGlob::new(&i.pattern)?;
        let max = i.max_results.clamp(1, 5000);
        let mut matches = Vec::new();
        let mut truncated = false;
        for p in walk(root, &dir, i.include_hidden) {
            let rel = root.rel_of(&p);
            if glob.matches(&rel) {
                if matches.len() == max {
                    truncated = true;
                    break;
                }
                matches.push(rel);
            }
        }
        Ok(json!({"pattern": i.pattern, "matches": matches, "truncated": truncated}))
    }

    pub(crate) fn grep(&self, i: GrepInput) -> Result<Value, ExecError> {
        let root = &self.ops.opts.root;
        let dir = root.resolve(&i.path)?;
        let glob = i.glob.as_deref().map(NameGlob::new).transpose()?;
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(i.case_insensitive)
            .fixed_strings(!i.regex)
            .size_limit(1 << 20)
            .build(&i.pattern)
            .map_err(|e| ExecError::InvalidPattern {
                pattern: i.pattern.clone(),
                message: e.to_string(),
            })?;
        let ctx = i.context_lines.min(10);
        let max = i.max_results.clamp(1, 1000);
        let mut searcher = SearcherBuilder::new().line_number(true).build();
        let mut matches: Vec<Value> = Vec::new();
        let mut truncated = false;
        for p in walk(root, &dir, i.include_hidden) {
            let rel = root.rel_of(&p);
            if glob.as_ref().is_some_and(|g| !g.matches(&rel)) {
                continue;
            }
            if std::fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX)
                > self.ops.opts.max_search_file_bytes
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            if is_binary(&bytes) {
                continue;
            }
            let mut hits: Vec<(u64, String)> = Vec::new();
            let _ = searcher.search_slice(
                &matcher,
                &bytes,
                UTF8(|n, line| {
                    hits.push((n, line.trim_end_matches(['\n', '\r']).to_owned()));
                    Ok(hits.len() < max)
                }),
            );
            if hits.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            for (n, line) in hits {
                if matches.len() == max {
                    truncated = true;
                    break;
                }
                let idx = usize::try_from(n).unwrap_or(1).saturating_sub(1);
                let start = idx.saturating_sub(ctx);
                let end = (idx + ctx + 1).min(all.len());
                let before: Vec<String> = all[start.min(idx)..idx]
                    .iter()
                    .map(|l| bounded(l, 240))
                    .collect();
                let after: Vec<String> = all[(idx + 1).min(end)..end]
                    .iter()
                    .map(|l| bounded(l, 240))
                    .collect();
                matches.push(json!({"path": rel, "line": n, "text": bounded(&line, 240), "before": before, "after": after}));
            }
            if truncated {
                break;
            }
        }
        Ok(
            json!({"pattern": i.pattern, "regex": i.regex, "matches": matches, "count": matches.len(), "truncated": truncated}),
        )
    }

    pub(crate) fn write(&self, i: GuardedWriteInput) -> Result<Value, ExecError> {
        let p = self.ops.opts.root.resolve(&i.path)?;
        if !self.ops.opts.write {
            return Err(ExecError::WriteNotGranted(p.relative().into()));
        }
        self.fresh(&p, i.expected_sha256.as_deref())?;
        self.write_checked(&p, i.content.as_bytes(), i.append)
    }

    pub(crate) fn edit(&self, i: EditInput) -> Result<Value, ExecError> {
        let p = self.ops.opts.root.resolve(&i.path)?;
        if !self.ops.opts.write {
            return Err(ExecError::WriteNotGranted(p.relative().into()));
        }
        if !p.as_path().is_file() {
            return Err(ExecError::NotFound(p.relative().into()));
        }
        let bytes = self
            .fresh(&p, i.expected_sha256.as_deref())?
            .unwrap_or_default();
        let text = String::from_utf8(bytes)
            .map_err(|_| ExecError::NotAFile(format!("{} (not UTF-8 text)", p.relative())))?;
        if i.old_string.is_empty() {
            return Err(ExecError::EditNoMatch(p.relative().into()));
        }
        let count = text.matches(&i.old_string).count();
        if count == 0 {
            return Err(ExecError::EditNoMatch(p.relative().into()));
        }
        if count > 1 && !i.replace_all {
            return Err(ExecError::EditNotUnique {
                path: p.relative().into(),
                count,
            });
        }
        let new = if i.replace_all {
            text.replace(&i.old_string, &i.new_string)
        } else {
            text.replacen(&i.old_string, &i.new_string, 1)
        };
        let mut v = self.write_checked(&p, new.as_bytes(), false)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("replacements".into(), json!(count));
        }
        Ok(v)
    }

    pub(crate) fn apply_patch(&self, i: PatchInput) -> Result<Value, ExecError> {
        let root = &self.ops.opts.root;
        if !self.ops.opts.write {
            return Err(ExecError::WriteNotGranted("apply_patch".into()));
        }
        let parts = split_patch(&i.patch)?;
        // Resolve every path first: nothing is written unless all of it applies.
        let mut planned: Vec<(ContainedPath, Option<String>)> = Vec::new();
        let mut touched = BTreeSet::new();
        for part in &parts {
            let name = part
                .new
                .as_ref()
                .or(part.old.as_ref())
                .ok_or_else(|| ExecError::PatchInvalid("both sides are /dev/null".into()))?;
            let p = root.resolve(name)?;
            if let (Some(old), Some(new)) = (&part.old, &part.new)
                && root.resolve(old)? != p
            {
                return Err(ExecError::PatchInvalid(format!(
                    "renames are not supported ({old} → {new})"
                )));
            }
            touched.insert(p.relative().to_owned());
            let patch = diffy::Patch::from_str(&part.text)
                .map_err(|e| ExecError::PatchInvalid(format!("{}: {e}", p.relative())))?;
            let base = match &part.old {
                None => {
                    if p.as_path().exists() {
                        return Err(ExecError::AlreadyExists(p.relative().into()));
                    }
                    String::new()
                }
                Some(_) => {
                    let bytes = self
                        .fresh(&p, None)?
                        .ok_or_else(|| ExecError::NotFound(p.relative().into()))?;
                    String::from_utf8(bytes).map_err(|_| {
                        ExecError::NotAFile(format!("{} (not UTF-8 text)", p.relative()))
                    })?
                }
            };
            let new_text =
                diffy::apply(&base, &patch).map_err(|e| ExecError::PatchDoesNotApply {
                    path: p.relative().into(),
                    message: e.to_string(),
                })?;
            planned.push((p, part.new.as_ref().map(|_| new_text)));
        }
        if let Some(expected) = &i.expected_files {
            let exp: BTreeSet<String> = expected
                .iter()
                .map(|e| root.resolve(e).map(|p| p.relative().to_owned()))
                .collect::<Result<_, _>>()?;
            if exp != touched {
                return Err(ExecError::PatchFilesMismatch {
                    actual: touched.into_iter().collect(),
                    expected: exp.into_iter().collect(),
                });
            }
        }
        let mut infos = Vec::new();
        for (p, content) in planned {
            match content {
                Some(text) => {
                    write_contained(&p, text.as_bytes(), false)?;
                    let sha = sha256_hex(text.as_bytes());
                    self.remember(p.as_path().to_path_buf(), sha.clone());
                    infos.push(json!({"path": p.relative(), "bytes": text.len(), "sha256": sha}));
                }
                None => {
                    std::fs::remove_file(p.as_path())?;
                    if let Ok(mut s) = self.read_state.lock() {
                        s.remove(p.as_path());
                    }
                    infos.push(json!({"path": p.relative(), "deleted": true}));
                }
            }
        }
        Ok(json!({"paths": touched, "files": infos}))
    }
}

/// Registers the coding-agent actions over `options.root`. Returns the ids.
pub fn register_coding_agent_actions(
    registry: &mut ActionRegistry,
    options: FilesOptions,
) -> Result<Vec<String>, ExecError> {
    let write = options.write;
    let c = Coding::new(options);
    let mut actions = vec![list_action(&c.ops), search_action(&c.ops)];
    let k = c.clone();
    actions.push(
        typed::<ReadInput, _, _>(
            "read_file",
            "Read a file under the workspace root (bounded; page with `offset`). A whole-file read records its sha256, which later edits require.",
            move |_ctx, i| {
                let k = k.clone();
                async move { blocking(move || k.read(i)).await }
            },
        )
        .tag("coding"),
    );
    let k = c.clone();
    actions.push(
        typed::<GlobInput, _, _>(
            "glob_files",
            "List files whose path or name matches a glob (`**/*.rs`), sorted; symlinks and hidden files skipped.",
            move |_ctx, i| {
                let k = k.clone();
                async move { blocking(move || k.glob(i)).await }
            },
        )
        .tag("coding"),
    );
    let k = c.clone();
    actions.push(
        typed::<GrepInput, _, _>(
            "grep_files",
            "Search file contents with a regular expression (or fixed text), optionally filtered by a glob, with context lines.",
            move |_ctx, i| {
                let k = k.clone();
                async move { blocking(move || k.grep(i)).await }
            },
        )
        .tag("coding"),
    );
    if write {
        let k = c.clone();
        actions.push(
            typed::<GuardedWriteInput, _, _>(
                "write_file",
                "Create or overwrite a file. Overwriting needs a prior whole-file read_file or expected_sha256, and the file must be unchanged since.",
                move |_ctx, i| {
                    let k = k.clone();
                    async move { blocking(move || k.write(i)).await }
                },
            )
            .side_effect(SideEffect::Write)
            .tag("coding"),
        );
        let k = c.clone();
        actions.push(
            typed::<EditInput, _, _>(
                "edit_file",
                "Replace an exact, unique text in a file (or every occurrence with replace_all). Needs a prior whole-file read_file or expected_sha256.",
                move |_ctx, i| {
                    let k = k.clone();
                    async move { blocking(move || k.edit(i)).await }
                },
            )
            .side_effect(SideEffect::Write)
            .tag("coding"),
        );
        let k = c.clone();
        actions.push(
            typed::<PatchInput, _, _>(
                "apply_patch",
                "Apply a unified diff to one or more files, all or nothing. Existing files must have been read whole first.",
                move |_ctx, i| {
                    let k = k.clone();
                    async move { blocking(move || k.apply_patch(i)).await }
                },
            )
            .side_effect(SideEffect::Write)
            .tag("coding"),
        );
    }
    register(registry, actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_file_git_patches() {
        let p = "diff --git a/x.txt b/x.txt\nindex 1..2 100644\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/y.txt b/y.txt\nnew file mode 100644\n--- /dev/null\n+++ b/y.txt\n@@ -0,0 +1 @@\n+new\n";
        let parts = split_patch(p).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].old.as_deref(), Some("x.txt"));
        assert_eq!(parts[1].old, None);
        assert_eq!(parts[1].new.as_deref(), Some("y.txt"));
        assert!(split_patch("just text").is_err());
    }
}

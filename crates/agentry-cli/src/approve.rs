//! `--approve auto|deny|ask`: who decides action calls that need approval.
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use agentry::actions::{
    ApprovalDecision, ApprovalHandler, ApprovalRequest, AutoApprove, DenyAll, FailClosed,
};
use futures::future::BoxFuture;

/// The `--approve` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApproveMode {
    /// Approve every gated call.
    Auto,
    /// Deny every gated call (recorded as `blocked`).
    Deny,
    /// Ask on the terminal for each gated call.
    Ask,
}

/// The handler for a mode; without `--approve`, gated calls fail closed
/// (`approval_required` records, nothing runs).
pub fn handler(mode: Option<ApproveMode>) -> Arc<dyn ApprovalHandler> {
    match mode {
        None => Arc::new(FailClosed),
        Some(ApproveMode::Auto) => Arc::new(AutoApprove),
        Some(ApproveMode::Deny) => Arc::new(DenyAll),
        Some(ApproveMode::Ask) => Arc::new(AskOnTerminal {
            lock: tokio::sync::Mutex::new(()),
        }),
    }
}

/// Asks the person at the terminal, one request at a time. Without a terminal the
/// call stays pending: nobody can approve, so nothing runs.
#[derive(Debug)]
struct AskOnTerminal {
    lock: tokio::sync::Mutex<()>,
}

impl ApprovalHandler for AskOnTerminal {
    fn name(&self) -> &str {
        "ask"
    }

    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async move {
            let _one_at_a_time = self.lock.lock().await;
            let question = format!(
                "\napprove {} ({:?}) with input {}?{} [y/N] ",
                request.action_id,
                request.side_effect,
                request.input,
                if request.purpose.is_empty() {
                    String::new()
                } else {
                    format!(" purpose: {}", request.purpose)
                },
            );
            let answer = tokio::task::spawn_blocking(move || ask(&question))
                .await
                .ok()
                .flatten();
            match answer.as_deref().map(str::trim) {
                Some("y" | "Y" | "yes" | "YES" | "Yes") => ApprovalDecision::Approve,
                Some(_) => ApprovalDecision::Deny {
                    reason: "denied at the terminal".into(),
                },
                None => ApprovalDecision::Pending,
            }
        })
    }
}

/// Reads one answer from the controlling terminal; `None` when there is none.
fn ask(question: &str) -> Option<String> {
    let mut line = String::new();
    if std::io::stdin().is_terminal() {
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        return Some(line);
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let mut writer = tty.try_clone().ok()?;
    let _ = writer.write_all(question.as_bytes());
    let _ = writer.flush();
    std::io::BufReader::new(tty).read_line(&mut line).ok()?;
    Some(line)
}

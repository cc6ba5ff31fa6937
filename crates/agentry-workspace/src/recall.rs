//! Recall: a bounded context package for a goal, built from records and files.
//!
//! A [`Retriever`] proposes candidates (each with the reason it was chosen); the
//! builder reads a bounded excerpt of each and fits them into the character budget,
//! recording every candidate it leaves out and why. The retriever is a trait so a
//! vector retriever can replace or complement the keyword one later.
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::WorkspaceError;
use crate::facade::Workspace;
use crate::files::FileRef;
use crate::store::StoreFuture;
use crate::types::{RecordQuery, RecordRef, RefEnvelope, query_tokens, truncate_utf8};

/// Where to look.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecallScope {
    /// Structural record filters (`text` is ignored; the goal is the query).
    pub records: RecordQuery,
    /// Files (relative paths) that may contribute.
    pub files: Vec<String>,
}

/// Size limits of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Total characters of content.
    pub chars: usize,
    /// Characters per item.
    pub item_chars: usize,
    /// Candidates considered at most.
    pub max_candidates: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            chars: 12_000,
            item_chars: 2_400,
            max_candidates: 50,
        }
    }
}

/// A candidate source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum CandidateSource {
    /// A stored record.
    Record {
        /// Its reference (boxed: it is much larger than a path).
        reference: Box<RecordRef>,
    },
    /// A file under the root.
    File {
        /// Its relative path.
        path: String,
    },
}

/// A proposed context item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// What it is.
    pub source: CandidateSource,
    /// Relevance (higher is better); only the order matters.
    pub score: f64,
    /// Why it was proposed.
    pub why: String,
}

/// Proposes candidates for a goal. Implement it for vector or hybrid retrieval.
pub trait Retriever: Send + Sync + std::fmt::Debug {
    /// A short name for diagnostics.
    fn name(&self) -> &str;
    /// Candidates, best first, at most `max`.
    fn retrieve<'a>(
        &'a self,
        ws: &'a Workspace,
        goal: &'a str,
        scope: &'a RecallScope,
        max: u32,
    ) -> StoreFuture<'a, Vec<Candidate>>;
}

/// Full-text search over records (falling back to the filter alone when nothing
/// matches) plus token overlap over the scoped files.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeywordRetriever;

impl Retriever for KeywordRetriever {
    fn name(&self) -> &str {
        "keyword"
    }

    fn retrieve<'a>(
        &'a self,
        ws: &'a Workspace,
        goal: &'a str,
        scope: &'a RecallScope,
        max: u32,
    ) -> StoreFuture<'a, Vec<Candidate>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut q = scope.records.clone();
            q.text = Some(goal.to_owned());
            q.limit = Some(max);
            let hits = ws.search(q.clone()).await?;
            let n = hits.len();
            if n > 0 {
                for (i, r) in hits.into_iter().enumerate() {
                    out.push(Candidate {
                        source: CandidateSource::Record {
                            reference: Box::new(r),
                        },
                        score: 1.0 - i as f64 / (n as f64 + 1.0),
                        why: format!("full-text match for the goal (rank {})", i + 1),
                    });
                }
            } else {
                q.text = None;
                for r in ws.search(q).await? {
                    out.push(Candidate {
                        source: CandidateSource::Record {
                            reference: Box::new(r),
                        },
                        score: 0.1,
                        why: "matches the scope filters (no text match; newest first)".into(),
                    });
                }
            }
            let tokens: BTreeSet<String> = query_tokens(goal).into_iter().collect();
            for path in &scope.files {
                let Ok(content) = ws.read_file_bounded(path, None, 256 * 1024).await else {
                    out.push(Candidate {
                        source: CandidateSource::File { path: path.clone() },
                        score: 0.0,
                        why: "in scope but unreadable".into(),
                    });
                    continue;
                };
                let text = String::from_utf8_lossy(&content.bytes).to_lowercase();
                let found: Vec<&String> = tokens
                    .iter()
                    .filter(|t| text.contains(t.as_str()))
                    .collect();
                let score = if tokens.is_empty() {
                    0.5
                } else {
                    found.len() as f64 / tokens.len() as f64
                };
                out.push(Candidate {
                    source: CandidateSource::File { path: path.clone() },
                    score,
                    why: format!("file in scope; goal words found: {}", found.len()),
                });
            }
            out.sort_by(|a, b| b.score.total_cmp(&a.score));
            out.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            Ok(out)
        })
    }
}

/// The reference of a context item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ItemRef {
    /// A record envelope.
    Record {
        /// The envelope.
        envelope: RefEnvelope,
    },
    /// A file version.
    File {
        /// The file reference.
        file: FileRef,
    },
}

/// One item of a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextItem {
    /// What it refers to (readable in full through the store or the file root).
    pub reference: ItemRef,
    /// Summary (records) or path (files).
    pub summary: String,
    /// The excerpt.
    pub content: String,
    /// Characters of `content`.
    pub chars: usize,
    /// Whether the excerpt is shorter than the source.
    pub truncated: bool,
    /// Why it was chosen.
    pub why: String,
}

/// A candidate that did not make it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Omission {
    /// Record id or file path.
    pub id: String,
    /// `budget`, `binary`, `unreadable`.
    pub reason: String,
    /// Detail.
    pub detail: String,
}

/// How the package was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallDiagnostics {
    /// The retriever's name.
    pub retriever: String,
    /// Candidates proposed.
    pub candidate_count: usize,
    /// Characters used.
    pub used_chars: usize,
    /// The budget.
    pub char_budget: usize,
}

/// A bounded context package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextPackage {
    /// The goal.
    pub goal: String,
    /// Items, in the order they should be shown.
    pub items: Vec<ContextItem>,
    /// What was left out and why.
    pub omitted: Vec<Omission>,
    /// Diagnostics.
    pub diagnostics: RecallDiagnostics,
}

/// Smallest excerpt worth including after the first item.
const MIN_EXCERPT: usize = 200;

fn excerpt(text: &str, max_chars: usize) -> (String, bool) {
    let mut out: String = text.chars().take(max_chars).collect();
    let truncated = out.len() < text.len();
    if truncated {
        out.push_str("\n[truncated]");
    }
    (out, truncated)
}

pub(crate) async fn build_context(
    ws: &Workspace,
    retriever: &dyn Retriever,
    goal: &str,
    scope: &RecallScope,
    budget: Budget,
) -> Result<ContextPackage, WorkspaceError> {
    let candidates = retriever
        .retrieve(ws, goal, scope, budget.max_candidates.max(1))
        .await?;
    let mut items = Vec::new();
    let mut omitted = Vec::new();
    let mut used = 0usize;
    let count = candidates.len();
    for cand in candidates {
        let remaining = budget.chars.saturating_sub(used);
        let (id, summary, reference, text) = match &cand.source {
            CandidateSource::Record { reference } => {
                let id = reference.id.to_string();
                if reference.content_type == "application/octet-stream" {
                    omitted.push(Omission {
                        id,
                        reason: "binary".into(),
                        detail: "binary body is not shown".into(),
                    });
                    continue;
                }
                let store = ws.store().await?;
                let bytes_wanted = (budget.item_chars as u64).saturating_mul(4).max(4);
                match store.read_bounded(&reference.id, 0, bytes_wanted).await {
                    Ok(r) => {
                        let mut text = String::from_utf8_lossy(&r.bytes).into_owned();
                        if !r.eof {
                            text.push('…'); // marks that more exists beyond the read window
                        }
                        let env = reference.envelope(&store.capabilities().backend);
                        (
                            id,
                            reference.summary.clone(),
                            ItemRef::Record { envelope: env },
                            text,
                        )
                    }
                    Err(e) => {
                        omitted.push(Omission {
                            id,
                            reason: "unreadable".into(),
                            detail: e.to_string(),
                        });
                        continue;
                    }
                }
            }
            CandidateSource::File { path } => match ws
                .read_file_bounded(path, None, (budget.item_chars as u64) * 4)
                .await
            {
                Ok(f) => {
                    let text = String::from_utf8_lossy(&f.bytes).into_owned();
                    (
                        path.clone(),
                        path.clone(),
                        ItemRef::File { file: f.file_ref },
                        text,
                    )
                }
                Err(e) => {
                    omitted.push(Omission {
                        id: path.clone(),
                        reason: "unreadable".into(),
                        detail: e.to_string(),
                    });
                    continue;
                }
            },
        };
        let allowed = budget.item_chars.min(remaining);
        if allowed == 0 || (!items.is_empty() && allowed < MIN_EXCERPT.min(text.chars().count())) {
            omitted.push(Omission {
                id,
                reason: "budget".into(),
                detail: format!("{remaining} characters left of {}", budget.chars),
            });
            continue;
        }
        let (content, truncated) = excerpt(&text, allowed);
        let chars = content.chars().count().min(allowed);
        used += chars;
        items.push(ContextItem {
            reference,
            summary: truncate_utf8(&summary, 480).to_owned(),
            content,
            chars,
            truncated,
            why: cand.why,
        });
    }
    Ok(ContextPackage {
        goal: goal.to_owned(),
        items,
        omitted,
        diagnostics: RecallDiagnostics {
            retriever: retriever.name().to_owned(),
            candidate_count: count,
            used_chars: used,
            char_budget: budget.chars,
        },
    })
}

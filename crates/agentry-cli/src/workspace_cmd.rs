//! `agentry workspace records|events|snapshots|leases`: inspect a Workspace (a
//! directory with its SQLite store, or a PostgreSQL URL).
use std::path::PathBuf;

use agentry::workspace::{EventQuery, RecordQuery, Workspace};
use clap::{Args, Subcommand};
use serde::Serialize;

/// Where the Workspace is.
#[derive(Debug, Args, Clone)]
pub struct WorkspaceLocation {
    /// The Workspace root (default: the current directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub workspace: Option<PathBuf>,
    /// The store URL (`sqlite://…`, `postgres://…`), overriding the root's SQLite
    /// store (also from AGENTRY_WORKSPACE_URL).
    #[arg(long, value_name = "URL", env = "AGENTRY_WORKSPACE_URL", global = true)]
    pub workspace_url: Option<String>,
}

impl WorkspaceLocation {
    pub fn open(&self) -> Result<Workspace, String> {
        let root = self.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
        let mut builder = Workspace::open(&root);
        if let Some(url) = &self.workspace_url {
            builder = builder.store_url(url.clone());
        }
        builder
            .build()
            .map_err(|e| format!("cannot open the Workspace at {}: {e}", root.display()))
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Records, newest first (or ranked by --text).
    Records {
        /// Only this collection.
        #[arg(long)]
        collection: Option<String>,
        /// Full-text query.
        #[arg(long)]
        text: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Events of one execution, or the executions that have events.
    Events {
        /// The execution (omit to list executions with events).
        #[arg(long)]
        execution: Option<String>,
        /// Only types starting with this (e.g. `model.`).
        #[arg(long)]
        type_prefix: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Snapshot heads of every run.
    Snapshots {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Leases.
    Leases {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn print<T: Serialize>(items: &[T], json: bool, line: impl Fn(&T) -> String) {
    if json {
        match serde_json::to_string(items) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("agentry: cannot encode the listing: {e}"),
        }
    } else if items.is_empty() {
        println!("(none)");
    } else {
        for item in items {
            println!("{}", line(item));
        }
    }
}

/// Runs one listing; exit code 0, 1 when the store fails, 2 when it cannot be opened.
pub async fn run(location: &WorkspaceLocation, command: WorkspaceCommand) -> u8 {
    let workspace = match location.open() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("agentry: {e}");
            return 2;
        }
    };
    let result = match command {
        WorkspaceCommand::Records {
            collection,
            text,
            limit,
            json,
        } => {
            let mut query = RecordQuery::new();
            query.collection = collection;
            query.text = text;
            query.limit = Some(limit);
            workspace.list_records(query).await.map(|items| {
                print(&items, json, |r| {
                    format!(
                        "{}  {}  {}",
                        r.id,
                        r.collection,
                        r.kind.as_deref().unwrap_or("-")
                    )
                })
            })
        }
        WorkspaceCommand::Events {
            execution: Some(id),
            type_prefix,
            limit,
            json,
        } => {
            let mut query = EventQuery::new(id);
            query.type_prefix = type_prefix;
            query.limit = Some(limit);
            workspace
                .list_events(query)
                .await
                .map(|items| print(&items, json, |e| format!("{:>5}  {}", e.seq, e.event_type)))
        }
        WorkspaceCommand::Events {
            execution: None,
            limit,
            json,
            ..
        } => workspace.list_event_logs(Some(limit)).await.map(|items| {
            print(&items, json, |h| {
                serde_json::to_string(h).unwrap_or_default()
            })
        }),
        WorkspaceCommand::Snapshots { limit, json } => {
            workspace.list_snapshots(Some(limit)).await.map(|items| {
                print(&items, json, |h| {
                    serde_json::to_string(h).unwrap_or_default()
                })
            })
        }
        WorkspaceCommand::Leases { limit, json } => {
            workspace.list_leases(Some(limit)).await.map(|items| {
                print(&items, json, |l| {
                    serde_json::to_string(l).unwrap_or_default()
                })
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "agentry: workspace error [{}]: {e}",
                agentry::ErrorCode::code(&e)
            );
            1
        }
    }
}

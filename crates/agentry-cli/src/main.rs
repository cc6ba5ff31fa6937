//! The `agentry` command.
//!
//! Exit codes: 0 success, 1 the execution failed, 2 usage or configuration error.
//! Machine output (`--json`, `--events jsonl`) goes to stdout; human progress to
//! stderr.
mod approve;
mod builtins;
mod config;
mod mcp_cmd;
mod run;
mod workspace_cmd;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "agentry",
    version,
    about = "Agentry: an agent runtime. Run agents from the command line."
)]
struct Cli {
    /// Configuration file (default: ./agentry.toml when present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one request through an agent.
    Run(RunArgs),
    /// MCP: list or call a server's tools, or serve actions to MCP clients.
    Mcp {
        #[command(subcommand)]
        command: mcp_cmd::McpCommand,
    },
    /// Inspect a Workspace: records, events, snapshots, leases.
    Workspace {
        #[command(flatten)]
        location: workspace_cmd::WorkspaceLocation,
        #[command(subcommand)]
        command: workspace_cmd::WorkspaceCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and resolve the configuration, report what would be used, and exit 0 if
    /// it is usable (2 otherwise). Never prints key values.
    Check {
        /// Model key or name to check (as `agentry run --model`).
        #[arg(long)]
        model: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EventsFormat {
    /// One RuntimeEvent JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The request. `-` reads it from standard input.
    prompt: Option<String>,
    /// Model: `test` (built-in, no server), a key of [models] in agentry.toml, or a
    /// model name on the default OpenAI-compatible endpoint.
    #[arg(long, value_name = "test|NAME")]
    model: Option<String>,
    /// Base URL of an OpenAI-compatible server (overrides OPENAI_BASE_URL).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Extra instruction for this request.
    #[arg(long)]
    instruct: Vec<String>,
    /// Ask for JSON satisfying this JSON Schema file; prints the validated JSON.
    #[arg(long, value_name = "SCHEMA.json")]
    output: Option<PathBuf>,
    /// Print one JSON result object on stdout.
    #[arg(long, conflicts_with = "events")]
    json: bool,
    /// Print RuntimeEvents on stdout.
    #[arg(long, value_enum, value_name = "FORMAT")]
    events: Option<EventsFormat>,
    /// Hard deadline in seconds.
    #[arg(long, allow_negative_numbers = true)]
    max_seconds: Option<f64>,
    /// Longest time without progress, in seconds.
    #[arg(long, allow_negative_numbers = true)]
    max_no_progress_seconds: Option<f64>,
    /// Most model requests.
    #[arg(long)]
    max_model_requests: Option<u32>,
    /// Who approves action calls that need approval (default: nobody — they stay
    /// pending and do not run).
    #[arg(long, value_enum)]
    approve: Option<approve::ApproveMode>,
    /// Most planning rounds that execute actions.
    #[arg(long, value_name = "N")]
    max_rounds: Option<u32>,
    /// Built-in action packages for the model: shell, python, node, sqlite, files,
    /// coding (comma-separated). Files and commands are confined to --workspace
    /// (default: the current directory).
    #[arg(long, value_name = "LIST")]
    enable: Option<String>,
    /// Isolation of commands and code: auto (bubblewrap when available), required
    /// (fail closed without it), off (needs --profile trusted).
    #[arg(long, default_value = "auto", value_name = "auto|required|off")]
    sandbox: String,
    /// Permission profile of the built-in actions: read_only, local_files,
    /// network_read, install_capable_shell, trusted.
    #[arg(long, default_value = "read_only", value_name = "PROFILE")]
    profile: String,
    /// Use an MCP server's tools as actions: `NAME=COMMAND ARGS…` (stdio),
    /// `NAME=URL` (Streamable HTTP), `NAME=sse+URL` (legacy HTTP+SSE, e.g.
    /// `old=sse+https://host/sse`), or a NAME from [mcp.servers] in agentry.toml.
    /// Repeatable.
    #[arg(long, value_name = "NAME=CMD|URL|sse+URL")]
    mcp: Vec<String>,
    /// Bind a Workspace: every RuntimeEvent is persisted to it.
    #[command(flatten)]
    workspace: workspace_cmd::WorkspaceLocation,
    /// Write the execution's observation (record + checkpoint) to the Workspace.
    #[arg(long)]
    record: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Diagnostics go to stderr. rmcp's own logs are off by default: its failures
    // reach the user as typed `mcp.*` errors, and stray log lines would break the
    // one-line error promise. AGENTRY_LOG overrides (e.g. `AGENTRY_LOG=debug`).
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agentry: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let env = config::Env::from_process();
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(cli.config, args, &env).await,
            Command::Mcp { command } => match config::load_file(cli.config.as_deref()) {
                Ok(file) => mcp_cmd::run(&file.mcp, command).await,
                Err(e) => {
                    eprintln!("agentry: config error: {e}");
                    2
                }
            },
            Command::Workspace { location, command } => {
                workspace_cmd::run(&location, command).await
            }
            Command::Config {
                command: ConfigCommand::Check { model, json },
            } => config_check(cli.config, model, json, &env),
        }
    });
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

fn config_check(path: Option<PathBuf>, model: Option<String>, json: bool, env: &config::Env) -> u8 {
    let overrides = config::Overrides {
        config_path: path,
        model,
        base_url: None,
    };
    match config::resolve(&overrides, env) {
        Ok(r) => {
            let models: Vec<serde_json::Value> = r
                .models
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "key": m.key,
                        "description": m.description,
                        "api_key_present": m.api_key_present,
                    })
                })
                .collect();
            if json {
                let report = serde_json::json!({
                    "ok": true,
                    "config_file": r.source.as_ref().map(|p| p.display().to_string()),
                    "selected_model": r.selected,
                    "models": models,
                    "limits": r.limits,
                });
                println!("{report}");
            } else {
                match &r.source {
                    Some(p) => println!("config: {}", p.display()),
                    None => println!("config: none (environment and flags only)"),
                }
                println!("selected model: {}", r.selected);
                for m in &r.models {
                    let key_note = match m.api_key_present {
                        Some(true) => ", API key set",
                        Some(false) => ", no API key",
                        None => "",
                    };
                    println!("  {}: {}{}", m.key, m.description, key_note);
                }
                println!("ok");
            }
            0
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            }
            eprintln!("agentry: config error: {e}");
            2
        }
    }
}

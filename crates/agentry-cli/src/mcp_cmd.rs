//! `agentry mcp list|call|serve` and the servers of `agentry run --mcp`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agentry::actions::{ActionPolicy, ActionRegistry, Dispatcher};
use agentry_mcp::{McpServer, McpServerConfig, McpServersConfig, ServeOptions, UseMcpOptions};
use clap::Subcommand;

use crate::workspace_cmd::WorkspaceLocation;

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// List the tools of a server.
    List {
        /// `NAME` from [mcp.servers] in agentry.toml, or `NAME=COMMAND ARGS…`, or `NAME=URL`
        /// (Streamable HTTP), or `NAME=sse+URL` (legacy HTTP+SSE).
        #[arg(long)]
        server: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Call one tool of a server and print its result as JSON.
    Call {
        /// `NAME`, `NAME=COMMAND ARGS…`, `NAME=URL` or `NAME=sse+URL`.
        #[arg(long)]
        server: String,
        /// The tool.
        tool: String,
        /// Arguments as a JSON object (default `{}`).
        arguments: Option<String>,
    },
    /// Serve the built-in actions (`--enable`) to MCP clients over stdio, or over
    /// Streamable HTTP with `--http ADDR` (endpoint `/mcp`). Policy and approval
    /// apply as in `agentry run`.
    Serve {
        /// Listen on this address for Streamable HTTP instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// Action packages to expose (as `agentry run --enable`).
        #[arg(long, value_name = "LIST")]
        enable: String,
        /// Isolation: auto, required, off.
        #[arg(long, default_value = "auto")]
        sandbox: String,
        /// Permission profile of the exposed actions.
        #[arg(long, default_value = "read_only")]
        profile: String,
        /// Who approves calls that need approval (default: nobody; they fail closed).
        #[arg(long, value_enum)]
        approve: Option<crate::approve::ApproveMode>,
        #[command(flatten)]
        workspace: WorkspaceLocation,
    },
}

/// Resolves `--server`/`--mcp` values: `NAME=…` inline, or a name from the file.
pub fn server_config(
    spec: &str,
    file: &McpServersConfig,
) -> Result<(String, McpServerConfig), String> {
    if spec.contains('=') {
        return agentry_mcp::parse_mcp_arg(spec).map_err(|e| format!("--mcp {spec}: {e}"));
    }
    file.servers
        .get(spec)
        .cloned()
        .map(|c| (spec.to_owned(), c))
        .ok_or_else(|| format!("no MCP server `{spec}`: add [mcp.servers.{spec}] to agentry.toml or use {spec}=COMMAND|URL|sse+URL"))
}

/// Connects the `--mcp` servers and registers their tools as actions.
pub async fn connect_all(
    specs: &[String],
    file: &McpServersConfig,
    registry: &mut ActionRegistry,
) -> Result<Vec<McpServer>, String> {
    let mut servers = Vec::with_capacity(specs.len());
    for spec in specs {
        let (name, config) = server_config(spec, file)?;
        let server = McpServer::new(name.clone(), config)
            .map_err(|e| format!("MCP server `{name}`: {e}"))?;
        agentry_mcp::use_mcp(registry, &server, UseMcpOptions::default())
            .await
            .map_err(|e| format!("MCP server `{name}`: {e}"))?;
        servers.push(server);
    }
    Ok(servers)
}

pub async fn run(file: &McpServersConfig, command: McpCommand) -> u8 {
    match command {
        McpCommand::List { server, json } => {
            let (name, config) = match server_config(&server, file) {
                Ok(x) => x,
                Err(e) => return fail(2, e),
            };
            match agentry_mcp::list_server_tools(&name, &config).await {
                Ok(tools) if json => {
                    println!("{}", serde_json::to_string(&tools).unwrap_or_default());
                    0
                }
                Ok(tools) => {
                    for t in &tools {
                        println!("{}  {}", t.name, t.description);
                    }
                    0
                }
                Err(e) => fail(1, format!("[{}] {e}", agentry::ErrorCode::code(&e))),
            }
        }
        McpCommand::Call {
            server,
            tool,
            arguments,
        } => {
            let (name, config) = match server_config(&server, file) {
                Ok(x) => x,
                Err(e) => return fail(2, e),
            };
            let args = match arguments.as_deref().map(serde_json::from_str).transpose() {
                Ok(a) => a.unwrap_or_else(|| serde_json::json!({})),
                Err(e) => return fail(2, format!("the arguments are not valid JSON: {e}")),
            };
            match agentry_mcp::call_server_tool(&name, &config, &tool, args).await {
                Ok(v) => {
                    println!("{v}");
                    0
                }
                Err(e) => fail(1, format!("[{}] {e}", agentry::ErrorCode::code(&e))),
            }
        }
        McpCommand::Serve {
            http,
            enable,
            sandbox,
            profile,
            approve,
            workspace,
        } => {
            let approval = crate::approve::handler(approve);
            let root = workspace
                .workspace
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            let builtins = match crate::builtins::enable(
                &enable,
                root,
                &sandbox,
                &profile,
                approval.clone(),
            ) {
                Ok(b) => b,
                Err(e) => return fail(2, e),
            };
            let dispatcher = Dispatcher::new(builtins.registry.clone(), &ActionPolicy::default())
                .with_approval(approval)
                .with_resources(Arc::new(builtins.resources.clone()));
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let served = match http {
                Some(addr) => {
                    eprintln!(
                        "agentry: serving {} over MCP at http://{addr}/mcp",
                        builtins.action_ids.join(", ")
                    );
                    agentry_mcp::serve_http(dispatcher, addr, ServeOptions::default(), shutdown)
                        .await
                }
                None => {
                    agentry_mcp::serve_stdio(dispatcher, ServeOptions::default(), shutdown).await
                }
            };
            match served {
                Ok(()) => 0,
                Err(e) => fail(1, format!("[{}] {e}", agentry::ErrorCode::code(&e))),
            }
        }
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("agentry: {message}");
    code
}

//! The `nuannan` command line (DESIGN §10).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::workers::{self, Role};

#[derive(Debug, Parser)]
#[command(name = "nuannan", version, about = "Dispatch pipeline for citizen petitions (暖南诉办)")]
pub struct Cli {
    /// Configuration file layered over config/default.toml (env vars override both).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every worker role in this process.
    Run,
    /// Start one worker role; run as many processes of it as load needs.
    Worker {
        #[arg(value_enum)]
        role: Role,
    },
    /// Declare the broker topology and exit.
    Topology,
    /// Feed a short demo stream from all three channels into a running
    /// pipeline and print what became of each message.
    Demo,
}

pub async fn execute(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Run => workers::run(&settings, &Role::ALL, shutdown_on_signal()).await,
        Command::Worker { role } => workers::run(&settings, &[role], shutdown_on_signal()).await,
        Command::Topology => workers::declare_topology(&settings).await,
        Command::Demo => crate::demo::run(&settings).await,
    }
}

/// Cancelled on SIGTERM or Ctrl-C: consumers stop taking work, finish and
/// ack what is in flight, and close.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

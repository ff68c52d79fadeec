use clap::Parser;
use nuannan::{config::Settings, telemetry};
use nuannan_workers::cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nuannan: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init();
    match cli::execute(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "nuannan failed");
            eprintln!("nuannan: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

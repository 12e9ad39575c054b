//! botai: the daemon around the botai PostgreSQL extension.

mod cli;
mod config;
mod db;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BOTAI_LOG")
                .unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
        )
        .with_target(false)
        .init();
    match cli.execute().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable chain of causes; no backtrace for an operator.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

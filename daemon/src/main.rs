//! botai: the daemon around the botai PostgreSQL extension.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = botai_daemon::cli::Cli::parse();
    if !cli.is_long_running() {
        botai_daemon::logging::init_stdout();
    }
    match cli.execute().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable chain of causes; no backtrace for an operator.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

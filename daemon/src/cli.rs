//! The command line: `botai run`, `botai status`, `botai db migrate`,
//! `botai paper-exchange`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, PgSettings, Source};
use crate::db::{self, Db};

#[derive(Debug, Parser)]
#[command(name = "botai", version, about = "The botai trading coordination daemon")]
pub struct Cli {
    /// Config file (TOML; keys are the environment variables' names in lower case).
    /// Default: ./botai.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon's components.
    Run {
        /// Which components to run.
        #[arg(long, value_enum, default_value_t = Mode::All)]
        mode: Mode,
    },
    /// Show components with state and pid, PostgreSQL, open alerts, balances.
    Status,
    /// Database administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Serve the paper exchange alone (Bybit V5 endpoints on PAPER_LISTEN),
    /// for engines in other processes (PAPER_EXCHANGE_URL).
    PaperExchange,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the migrations in migrations/ (roles, CREATE EXTENSION, seed
    /// configuration). Needs a superuser connection.
    Migrate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every component below, on the paper exchange replaying the shipped data.
    All,
    /// The ML manager (signal source; one live instance, others stand by).
    Ml,
    /// The trading engine.
    Core,
    /// The HTTP API (health, metrics, dashboard) and alert delivery.
    Api,
}

impl Cli {
    pub fn is_long_running(&self) -> bool {
        matches!(self.command, Command::Run { .. } | Command::PaperExchange)
    }

    /// Reads the configuration (file, .env, environment) once.
    pub fn config(&self) -> Result<Config> {
        crate::config::load_dotenv();
        Config::load(&Source::load(self.config.as_deref())?)
    }

    pub async fn execute(self) -> Result<()> {
        match &self.command {
            Command::Db { command: DbCommand::Migrate } => {
                crate::config::load_dotenv();
                let pg = PgSettings::from_source(&Source::load(self.config.as_deref())?)?;
                let db = Db::connect(&pg, "botai migrate").await?;
                let applied = db::migrate::run(&db).await?;
                if applied.is_empty() {
                    println!("migrations: up to date");
                }
                for m in applied {
                    println!("migrations: applied {m}");
                }
                Ok(())
            }
            Command::Status => crate::status::print(&self.config()?).await,
            Command::Run { mode } => {
                let cfg = Arc::new(self.config()?);
                let _logs = crate::logging::init(&cfg.log_dir)?;
                crate::run::run(cfg, *mode).await
            }
            Command::PaperExchange => {
                let cfg = self.config()?;
                let _logs = crate::logging::init(&cfg.log_dir)?;
                let listen = cfg.paper.listen.context("PAPER_LISTEN is off: nothing to serve")?;
                let replay = crate::market::replay::Replay::load(&cfg.market)?;
                let venue = Arc::new(crate::exchange::venue::Venue::new(
                    crate::exchange::venue::VenueSettings::from_config(&cfg.paper),
                    &cfg.market.symbol,
                    &cfg.trading.base,
                    &cfg.trading.quote,
                    replay,
                ));
                crate::exchange::double::serve(venue, listen, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
            }
        }
    }
}

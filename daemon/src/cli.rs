//! The command line: `botai run`, `botai status`, `botai db migrate`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::PgSettings;
use crate::db::{self, Db};

#[derive(Debug, Parser)]
#[command(name = "botai", version, about = "The botai trading coordination daemon")]
pub struct Cli {
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
    /// Show the state of the database and the components.
    Status,
    /// Database administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the migrations in migrations/ (roles, CREATE EXTENSION, seed
    /// configuration). Needs a superuser connection.
    Migrate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every component below.
    All,
    /// The ML manager (signal source; one live instance).
    Ml,
    /// The trading engine.
    Core,
    /// The HTTP API (health, metrics, dashboard).
    Api,
}

impl Cli {
    pub async fn execute(self) -> Result<()> {
        crate::config::load_dotenv();
        let pg = PgSettings::from_env()?;
        match self.command {
            Command::Db { command: DbCommand::Migrate } => {
                let db = Db::connect(&pg, "botai migrate").await?;
                let applied = db::migrate::run(&db).await?;
                if applied.is_empty() {
                    println!("migrations: up to date");
                } else {
                    for m in applied {
                        println!("migrations: applied {m}");
                    }
                }
                Ok(())
            }
            Command::Status => {
                let db = Db::connect(&pg, "botai status").await?;
                let version = db
                    .extension_version()
                    .await?
                    .context("the botai extension is not installed; run `botai db migrate`")?;
                println!("PostgreSQL {} on {}, botai {version}", db.server_version().await?, pg.describe());
                Ok(())
            }
            Command::Run { mode } => {
                let db = Db::connect(&pg, "botai").await?;
                let version = db
                    .extension_version()
                    .await?
                    .context("the botai extension is not installed; run `botai db migrate`")?;
                tracing::info!(?mode, %version, database = %pg.describe(), "botai daemon started; Ctrl-C stops it");
                tokio::signal::ctrl_c().await?;
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}

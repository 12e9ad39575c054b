//! The command line: `botai run`, `botai status`, `botai db migrate`,
//! `botai paper-exchange`, `botai exchange check`, `botai order …`,
//! `botai orders`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::db::{self, Db};
use crate::env::pg::PgSettings;
use crate::env::Source;
use crate::run::Mode;

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
    /// The venue of EXCHANGE: keys, clock, permissions, limits, balances.
    Exchange {
        #[command(subcommand)]
        command: ExchangeCommand,
    },
    /// A manual order through botai's guarantees (booked, funded, recorded).
    Order {
        #[command(subcommand)]
        command: OrderCommand,
    },
    /// The latest orders as botai recorded them.
    Orders {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// The position book: positions, P&L, open orders, the trading state.
    Positions,
    /// The kill switch: no engine sends a new order after this returns
    /// (botai_halt; waits for the orders in flight to be answered).
    Halt {
        /// Why, for the log, the alert and the next operator.
        reason: String,
        /// Allow only orders that shrink a position.
        #[arg(long)]
        reduce_only: bool,
    },
    /// Lift a halt or the reduce-only state (botai_resume; the operator's).
    /// A halt an alert rule imposed holds while its alert is open: name
    /// each such alert with --acknowledge (its id: `botai status` shows it).
    Resume {
        /// Why, recorded with the acknowledgement.
        #[arg(default_value = "resumed by an operator")]
        reason: String,
        /// An open alert of a rule that halts, acknowledged by this resume.
        #[arg(long, value_name = "ALERT_ID")]
        acknowledge: Vec<i64>,
    },
    /// Alert channels (the operator's).
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Make botai.alert_channels say what the alert configuration says
    /// (config/alerts.yaml and the environment): configured channels
    /// enabled with their triggers. Uses the operator's connection
    /// (operator.env).
    Apply {
        /// Also disable the registered channels not configured here.
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ExchangeCommand {
    /// Verify the API key (signed request), the clock offset and the key's
    /// permissions; print the symbol's rules, the limits and the balances.
    Check {
        /// Accept a key that can withdraw funds (refused otherwise).
        #[arg(long)]
        allow_withdraw_permission: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Buy QTY (base coin) of SYMBOL: a market order, or a limit order at --price.
    Buy(OrderArgs),
    /// Sell QTY (base coin) of SYMBOL.
    Sell(OrderArgs),
    /// Cancel an open order by its client order id.
    Cancel {
        /// The client order id (`botai orders` shows it).
        id: String,
    },
}

#[derive(Debug, clap::Args)]
struct OrderArgs {
    symbol: String,
    qty: rust_decimal::Decimal,
    /// Limit price (good till cancelled); without it, a market order.
    #[arg(long)]
    price: Option<rust_decimal::Decimal>,
    /// A conditional order: it waits at the venue until the last price
    /// reaches TRIGGER (rising to it from below, or falling to it from
    /// above), then goes to the book. Bybit and the paper exchange.
    #[arg(long)]
    trigger: Option<rust_decimal::Decimal>,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the migrations in migrations/ (roles, CREATE EXTENSION, seed
    /// configuration). Needs a superuser connection.
    Migrate,
}

impl Cli {
    pub fn is_long_running(&self) -> bool {
        matches!(self.command, Command::Run { .. } | Command::PaperExchange)
    }

    /// Reads the configuration (file, .env, environment) once.
    pub fn config(&self) -> Result<Config> {
        crate::env::load_dotenv();
        Config::load(&Source::load(self.config.as_deref())?)
    }

    /// The operator's connection (operator.env, then .env and the environment).
    fn operator_pg(&self) -> Result<PgSettings> {
        crate::env::load_operator_env();
        crate::env::load_dotenv();
        PgSettings::operator(&Source::load(self.config.as_deref())?)
    }

    pub async fn execute(self) -> Result<()> {
        match &self.command {
            Command::Db { command: DbCommand::Migrate } => {
                crate::env::load_dotenv();
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
            Command::Exchange { command: ExchangeCommand::Check { allow_withdraw_permission } } => {
                crate::operator::check(&self.config()?, *allow_withdraw_permission).await
            }
            Command::Order { command } => {
                let cfg = Arc::new(self.config()?);
                match command {
                    OrderCommand::Buy(a) => {
                        crate::operator::place(
                            cfg,
                            crate::exchange::Side::Buy,
                            &a.symbol.to_uppercase(),
                            a.qty,
                            a.price,
                            a.trigger,
                        )
                        .await
                    }
                    OrderCommand::Sell(a) => {
                        crate::operator::place(
                            cfg,
                            crate::exchange::Side::Sell,
                            &a.symbol.to_uppercase(),
                            a.qty,
                            a.price,
                            a.trigger,
                        )
                        .await
                    }
                    OrderCommand::Cancel { id } => crate::operator::cancel(&cfg, id).await,
                }
            }
            Command::Orders { limit } => crate::operator::list(&self.config()?, *limit).await,
            Command::Positions => crate::operator::positions(&self.config()?).await,
            Command::Halt { reason, reduce_only } => {
                let mode = if *reduce_only { "reduce_only" } else { "halted" };
                crate::operator::halt(&self.operator_pg()?, reason, mode).await
            }
            Command::Resume { reason, acknowledge } => {
                crate::operator::resume(&self.operator_pg()?, reason, acknowledge).await
            }
            Command::Alerts { command: AlertsCommand::Apply { prune } } => {
                let pg = self.operator_pg()?;
                crate::alerts::apply(&self.config()?.alerts, &pg, *prune).await
            }
            Command::Run { mode } => {
                let cfg = Arc::new(self.config()?);
                let _logs = crate::logging::init(&cfg.log_dir)?;
                crate::run::run(cfg, *mode).await
            }
            Command::PaperExchange => {
                let cfg = self.config()?;
                let _logs = crate::logging::init(&cfg.log_dir)?;
                let listen = cfg.paper.listen.context("PAPER_LISTEN is off: nothing to serve")?;
                let replay = crate::market::replay::Replay::load(&cfg.market, crate::ml::features::RAW_BARS)?;
                let venue = Arc::new(crate::sim::venue::Venue::new(
                    crate::sim::venue::VenueSettings::from_config(&cfg.paper),
                    &cfg.market.symbol,
                    &cfg.trading.base,
                    &cfg.trading.quote,
                    replay,
                ));
                crate::sim::double::serve(venue, listen, crate::run::shutdown_signal()).await
            }
        }
    }
}

//! Where log lines go.
//!
//! - stdout: readable — lifecycle events and warnings, never the per-bar
//!   prediction lines; lines suspend the progress bar instead of tearing it;
//! - `data/logs/<component>.<YYYY-MM-DD>.log`: one file per component per
//!   day (ml_manager, trading_engine, exchange, api, botai for the rest),
//!   including every prediction;
//! - `data/logs/errors.<YYYY-MM-DD>.log`: errors only, from every component.
//!
//! BOTAI_LOG (an env-filter, e.g. `debug` or `botai_daemon::trading=debug`)
//! sets the stdout level.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::{filter_fn, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Target of the one-line-per-prediction log (files only).
pub const PREDICTIONS: &str = "botai_daemon::ml::predictions";

/// (file prefix, module target) of each component's file.
const COMPONENTS: &[(&str, &str)] = &[
    ("ml_manager", "botai_daemon::ml"),
    ("trading_engine", "botai_daemon::trading"),
    ("exchange", "botai_daemon::exchange"),
    ("api", "botai_daemon::api"),
];

static PROGRESS: OnceLock<ProgressBar> = OnceLock::new();

/// Lets log lines on stdout pause the progress bar while they print.
pub fn attach_progress(bar: ProgressBar) {
    let _ = PROGRESS.set(bar);
}

struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match PROGRESS.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stdout().write(buf)),
            _ => std::io::stdout().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

struct StdoutMaker;

impl<'a> MakeWriter<'a> for StdoutMaker {
    type Writer = Stdout;
    fn make_writer(&'a self) -> Stdout {
        Stdout
    }
}

/// Guards that flush the file writers when dropped (keep them for the
/// life of the process).
pub struct Logging {
    _guards: Vec<WorkerGuard>,
}

fn daily(dir: &Path, prefix: &str) -> Result<RollingFileAppender> {
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .build(dir)
        .with_context(|| format!("cannot write logs under {}", dir.display()))
}

/// Stdout only (commands that are not long-running).
pub fn init_stdout() {
    let filter = EnvFilter::try_from_env("BOTAI_LOG").unwrap_or_else(|_| "info,tokio_postgres=warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(StdoutMaker).try_init();
}

/// Stdout plus the files under `dir`.
pub fn init(dir: &Path) -> Result<Logging> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    let mut guards = Vec::new();
    let stdout_filter = EnvFilter::try_from_env("BOTAI_LOG").unwrap_or_else(|_| "info,tokio_postgres=warn".into());
    let stdout = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(StdoutMaker)
        .with_filter(stdout_filter)
        .with_filter(filter_fn(|m| m.target() != PREDICTIONS));
    let mut files = Vec::new();
    let mut known = Targets::new();
    for (prefix, target) in COMPONENTS {
        let (writer, guard) = tracing_appender::non_blocking(daily(dir, prefix)?);
        guards.push(guard);
        files.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(Targets::new().with_target(*target, Level::DEBUG))
                .boxed(),
        );
        known = known.with_target(*target, LevelFilter::OFF);
    }
    // Everything not owned by a component (startup, database, reports).
    let (writer, guard) = tracing_appender::non_blocking(daily(dir, "botai")?);
    guards.push(guard);
    files.push(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(known.with_default(Level::INFO).with_target("tokio_postgres", Level::WARN))
            .boxed(),
    );
    let (writer, guard) = tracing_appender::non_blocking(daily(dir, "errors")?);
    guards.push(guard);
    files.push(
        tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer).with_filter(LevelFilter::ERROR).boxed(),
    );
    tracing_subscriber::registry().with(stdout).with(files).try_init().context("logging was initialised twice")?;
    Ok(Logging { _guards: guards })
}

//! What the service manager is told (deploy/systemd/): READY=1 once every
//! part of the process has started, WATCHDOG=1 every half `WatchdogSec` from
//! a task of the same runtime that does the work, STOPPING=1 on the way
//! out. A process whose runtime is wedged stops pinging and systemd
//! restarts it (`Restart=on-failure` with `WatchdogSec`); a component stuck
//! inside a live process is the monitor's business (the heartbeat_timeout
//! rule and its restart_component action). Without systemd (no
//! `NOTIFY_SOCKET`) all of this does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Tells systemd the service is up.
pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        warn!("cannot tell systemd the service is ready: {e}");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Half of `WATCHDOG_USEC`, when systemd asked for a watchdog of this
/// process: as sd_watchdog_enabled(3), a `WATCHDOG_PID` that is set must be
/// ours (an unset one is not checked).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Pings the watchdog until `stop`, when systemd asked for one.
pub async fn watchdog(stop: CancellationToken) {
    let Some(every) = watchdog_interval() else { return };
    info!("pinging the systemd watchdog every {every:?}");
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = sd_notify::notify(false, &[NotifyState::Watchdog]) {
                    warn!("cannot ping the systemd watchdog: {e}");
                }
            }
        }
    }
}

//! Losing the database server (issue 15): botai on a streaming-replication
//! pair of real Debian clusters of its own (not the test server on 5555).
//!
//! * On a hot standby every botai function that writes refuses with 25006
//!   naming the standby, every read answers, the monitor idles; promoted,
//!   the monitor starts its rounds and every rate window counts as full for
//!   the furthest booking plus one window.
//! * A failover under load: the paper exchange, an ML manager and a trading
//!   engine on `PGHOST=a,b` (read-write), the test's own signals and
//!   reservations; the primary's postmaster is killed with SIGKILL and the
//!   standby promoted (`pg_ctlcluster … promote`). Checked at the exchange:
//!   no rate window exceeded, no order sent twice, trading again within a
//!   measured time; checked on the new primary: with synchronous
//!   replication (remote_apply) nothing acknowledged is lost; with
//!   asynchronous replication what was lost is reported.
//!
//! The clusters are made with pg_createcluster and pg_basebackup -R and
//! dropped at the end; the tests of this file run one at a time.

use botai_tests::as_root;
mod cluster;
mod drill;
mod patroni;
mod standby;

const SOCKET_DIR: &str = "/var/run/postgresql";
const DATABASE: &str = "botai_failover";
/// botai.rate_limit_max_wait on both servers: how far ahead a booking may
/// reach, and so how long the new primary treats every window as full
/// (plus one window and the send jitter).
const MAX_WAIT_S: u32 = 5;

/// One test at a time: each makes two clusters and runs daemons.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run_root(what: &str, args: &[&str]) -> String {
    let out = as_root(args);
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

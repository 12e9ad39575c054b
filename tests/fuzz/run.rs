//! Running the calls: the sessions, the outcomes they count, and the state
//! the calls start from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botai_tests::{connect_to, sqlstate};
use chrono::Utc;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::generator::{shorten, Pools};
use crate::plan::Plan;
use crate::{Role, PROGRESS_EVERY, SESSIONS, STATEMENT_TIMEOUT};

#[derive(Default)]
pub(crate) struct FunctionStats {
    pub(crate) calls: u64,
    pub(crate) outcomes: BTreeMap<String, u64>,
    pub(crate) slowest: Duration,
    pub(crate) slowest_call: String,
}

pub(crate) struct Sample {
    pub(crate) count: u64,
    pub(crate) message: String,
    pub(crate) call: String,
    pub(crate) role: &'static str,
    pub(crate) file: Option<PathBuf>,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) functions: BTreeMap<String, FunctionStats>,
    /// XX000 by (function, message shape).
    pub(crate) internal: BTreeMap<(String, String), Sample>,
    /// First occurrence of every (function, SQLSTATE, origin).
    pub(crate) samples: BTreeMap<(String, String, &'static str), Sample>,
    /// Outcomes per role.
    pub(crate) roles: BTreeMap<&'static str, BTreeMap<String, u64>>,
    pub(crate) lost: Vec<String>,
}

impl Report {
    pub(crate) fn merge(&mut self, other: Report) {
        for (name, s) in other.functions {
            let mine = self.functions.entry(name).or_default();
            mine.calls += s.calls;
            for (code, n) in s.outcomes {
                *mine.outcomes.entry(code).or_default() += n;
            }
            if s.slowest > mine.slowest {
                mine.slowest = s.slowest;
                mine.slowest_call = s.slowest_call;
            }
        }
        for (key, sample) in other.internal {
            match self.internal.get_mut(&key) {
                Some(mine) => mine.count += sample.count,
                None => {
                    self.internal.insert(key, sample);
                }
            }
        }
        for (key, sample) in other.samples {
            match self.samples.get_mut(&key) {
                Some(mine) => mine.count += sample.count,
                None => {
                    self.samples.insert(key, sample);
                }
            }
        }
        for (role, outcomes) in other.roles {
            let mine = self.roles.entry(role).or_default();
            for (code, n) in outcomes {
                *mine.entry(code).or_default() += n;
            }
        }
        self.lost.extend(other.lost);
    }
}

pub(crate) struct Shared {
    pub(crate) database: String,
    pub(crate) plan: Plan,
    pub(crate) done: AtomicU64,
    pub(crate) abort: AtomicBool,
    pub(crate) finished: AtomicBool,
    pub(crate) pools: Mutex<Arc<Pools>>,
    pub(crate) in_flight: Vec<Mutex<String>>,
    pub(crate) started: Instant,
    pub(crate) findings_dir: PathBuf,
    pub(crate) file_counter: AtomicU64,
}

impl Shared {
    /// Writes the exact SQL of a finding to target/fuzz/ (it may be 10 MB).
    fn save(&self, function: &str, what: &str, sql: &str) -> Option<PathBuf> {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        if n >= 200 {
            return None;
        }
        let path = self.findings_dir.join(format!("{what}-{function}-{n}.sql"));
        std::fs::write(&path, format!("{sql};\n")).ok()?;
        Some(path)
    }
}

/// Messages differ by their inputs; group XX000 by the shape of the message.
fn message_shape(message: &str) -> String {
    let shape: String = message.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(70).collect();
    shape
}

pub(crate) async fn open_session(database: &str, role: Role) -> Client {
    let db = connect_to(database).await;
    let set_role = match role {
        Role::Superuser => String::new(),
        other => format!("SET ROLE {};", other.label()),
    };
    // A fuzzed botai_send_permit holds the send gate for the rest of its
    // session: a fuzzed botai_halt must not wait for it.
    db.batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'; SET botai.halt_wait = 0; {set_role}"))
        .await
        .expect("set up a fuzz session");
    db
}

pub(crate) async fn run_session(index: usize, role: Role, shared: Arc<Shared>) -> Report {
    let db = open_session(&shared.database, role).await;
    let mut report = Report::default();
    // Call i runs in session i mod SESSIONS: as the same role in every run.
    let mut next = index as u64;
    while next < shared.plan.calls && !shared.abort.load(Ordering::Relaxed) {
        let i = next;
        next += SESSIONS.len() as u64;
        let pools = shared.pools.lock().unwrap().clone();
        let call = shared.plan.call(i, &pools);
        let function = shared.plan.functions[call.function].name.clone();
        *shared.in_flight[index].lock().unwrap() = format!("call #{i} as {}: {}", role.label(), call.shown);
        let started = Instant::now();
        let result = db.simple_query(&call.sql).await;
        let took = started.elapsed();
        let stats = report.functions.entry(function.clone()).or_default();
        stats.calls += 1;
        if took > stats.slowest {
            stats.slowest = took;
            stats.slowest_call = call.shown.clone();
        }
        let code = match &result {
            Ok(messages) => {
                debug_assert!(messages.iter().any(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))));
                "ok".to_owned()
            }
            Err(e) => match sqlstate(e) {
                Some(code) if !db.is_closed() => code,
                _ => {
                    let others: Vec<String> = shared
                        .in_flight
                        .iter()
                        .enumerate()
                        .filter(|&(s, _)| s != index)
                        .map(|(s, c)| format!("    session {s}: {}", c.lock().unwrap()))
                        .collect();
                    let file = shared.save(&function, "lost", &call.sql);
                    report.lost.push(format!(
                        "session {index} ({}) lost its connection ({e}) during call #{i}: {}\n  full SQL: {}\n  \
                         in flight in the other sessions:\n{}",
                        role.label(),
                        call.shown,
                        file.map(|p| p.display().to_string()).unwrap_or_else(|| "not saved".into()),
                        others.join("\n")
                    ));
                    shared.abort.store(true, Ordering::Relaxed);
                    break;
                }
            },
        };
        *stats.outcomes.entry(code.clone()).or_default() += 1;
        *report.roles.entry(role.label()).or_default().entry(code.clone()).or_default() += 1;
        if let Err(e) = &result {
            let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
            let message = shorten(&message, 300);
            if code == "XX000" {
                let key = (function.clone(), message_shape(&message));
                match report.internal.get_mut(&key) {
                    Some(s) => s.count += 1,
                    None => {
                        let file = shared.save(&function, "XX000", &call.sql);
                        report.internal.insert(
                            key,
                            Sample {
                                count: 1,
                                message: message.clone(),
                                call: call.shown.clone(),
                                role: role.label(),
                                file,
                            },
                        );
                    }
                }
            }
            // Where it came from: botai's own checks name the function;
            // otherwise it came from inside the function unless PostgreSQL
            // refuses the arguments alone too (a literal out of range, an
            // invalid escape).
            let raw = e.as_db_error().map(|d| d.message()).unwrap_or_default();
            // botai's own refusals name the function that raised them: the
            // one called, or one it calls (botai_reserve_order books with
            // botai_rate_acquire).
            let raised_by = raw.split_once(": ").map(|(f, _)| f).unwrap_or_default();
            let by_botai = raised_by == function
                || (raised_by.starts_with("botai_") && shared.plan.functions.iter().any(|f| f.name == raised_by));
            let origin = if by_botai {
                "raised by botai"
            } else if code == "42501" && raw.starts_with("permission denied for function") {
                "no EXECUTE privilege"
            } else if code == "42804" && raw.ends_with("unsupported return type trigger") {
                "a trigger function, not callable"
            } else if code == "XX000" || code == "57014" || call.args.is_empty() {
                "inside the function"
            } else if db.simple_query(&format!("SELECT {}", call.args)).await.is_err() {
                "PostgreSQL refused an argument"
            } else {
                "inside the function"
            };
            let key = (function.clone(), code.clone(), origin);
            match report.samples.get_mut(&key) {
                Some(s) => s.count += 1,
                None => {
                    report.samples.insert(
                        key,
                        Sample { count: 1, message, call: call.shown.clone(), role: role.label(), file: None },
                    );
                }
            }
        }
        let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            let secs = shared.started.elapsed().as_secs_f64();
            println!("  {done:>7} calls, {:.0} calls/s, {secs:.0} s", done as f64 / secs);
        }
    }
    report
}

/// Keeps the pools of existing ids fresh while the run lasts.
pub(crate) async fn refresh_pools(db: Client, shared: Arc<Shared>) -> Client {
    while !shared.finished.load(Ordering::Relaxed) {
        let row = db
            .query_one(
                "SELECT ARRAY(SELECT reservation_id::text FROM botai.reservations ORDER BY reservation_id DESC LIMIT 48) \
                     || ARRAY(SELECT reservation_id::text FROM botai.reservations WHERE exchange = 'fuzz' \
                              ORDER BY random() LIMIT 16), \
                        ARRAY(SELECT task_id FROM botai.tasks ORDER BY task_id DESC LIMIT 24) \
                     || ARRAY(SELECT task_id FROM botai.tasks WHERE status = 'claimed' ORDER BY task_id DESC LIMIT 24), \
                        ARRAY(SELECT signal_id FROM botai.signals ORDER BY signal_id DESC LIMIT 32), \
                        ARRAY(SELECT order_id FROM botai.orders ORDER BY order_id DESC LIMIT 32), \
                        ARRAY(SELECT worker_id FROM botai.workers WHERE unregistered_at IS NULL \
                              ORDER BY registered_at DESC LIMIT 32), \
                        ARRAY(SELECT component FROM botai.components ORDER BY last_heartbeat DESC LIMIT 16)",
                &[],
            )
            .await;
        if let Ok(row) = row {
            let pools = Pools {
                reservations: row.get(0),
                tasks: row.get(1),
                signals: row.get(2),
                orders: row.get(3),
                workers: row.get(4),
                components: row.get(5),
            };
            *shared.pools.lock().unwrap() = Arc::new(pools);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    db
}

/// State for the calls to reach deep paths: balances, reservations (one
/// expiring during the run, one committed, one released), a registered
/// engine (held by `db` for the whole run), tasks, a component, a signal and
/// its order.
pub(crate) async fn seed_state(db: &Client) {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let symbol = format!("FZSEED{}", &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase());
    let signal = format!(r#"{{"symbol":"{symbol}","direction":"BUY","strategy":"s","timestamp":"{now}"}}"#);
    db.batch_execute(&format!(
        "SELECT botai_update_balance('fuzz', 'USDT', 1000, 1000, 0); \
         SELECT botai_update_balance('fuzz', 'BTC', 10, 10, 0); \
         SELECT botai_reserve_balance('fuzz', 'USDT', 10, 'fuzz-seed', '{{\"seed\": true}}', '5 minutes') \
           FROM generate_series(1, 3); \
         SELECT botai_reserve_balance('fuzz', 'USDT', 5, 'fuzz-seed', NULL, '2 seconds'); \
         SELECT botai_commit_reservation(botai_reserve_balance('fuzz', 'USDT', 20, 'fuzz-seed'), 4); \
         SELECT botai_release_reservation(botai_reserve_balance('fuzz', 'BTC', 1, 'fuzz-seed')); \
         SELECT botai_register_worker('fuzz_engine', 'fuzz_seed_engine', '{{}}'); \
         SELECT botai_enqueue_task('fuzz_ml', '{{\"job\": 1}}', NULL); \
         SELECT botai_enqueue_task('fuzz_ml', '{{\"job\": 2}}', 'k1'); \
         SELECT botai_register_component('fuzz_comp', '{{}}'); \
         SELECT * FROM botai_order_claim((SELECT signal_id FROM botai_register_signal('{signal}')), \
                                         'fuzz_seed_engine', 'fuzz');"
    ))
    .await
    .expect("seed the fuzz state");
}

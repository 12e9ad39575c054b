//! Hostile input (SQL_API.md, general rules: bad input is refused with a
//! proper SQLSTATE and writes nothing): every `botai_*` function is called
//! with generated hostile arguments — NULLs, empty and 10 MB strings, every
//! numeric edge, malformed and deeply nested JSON, timestamps and intervals
//! at and past their limits, invalid UTF-8 escapes, names with control
//! characters — mixed with valid-looking names and ids of existing rows, so
//! that calls reach the deep code paths too (a third of the calls are valid
//! but for at most one argument).
//!
//! The functions come from the catalog at run time (those of the extension
//! whose names start with `botai_`), so a function added later is fuzzed as
//! well. Each call is one statement of literal SQL, every argument cast to
//! its declared type, in its own implicit transaction; eight sessions run
//! the calls at once, call i in session i mod 8, as the superuser,
//! `botai_service`, and each of botai's roles (reader, engine, ML manager,
//! alerter, operator).
//!
//! Afterwards: no backend crashed (a sentinel session opened before the run
//! still answers, and `pg_postmaster_start_time()` did not change: a
//! crash-restart ends every session), no connection was lost, no call ended
//! in XX000, reserving on the state the run left stays within what is
//! available, and the balances are consistent (`check_balances`). Every
//! other outcome is counted per function and SQLSTATE, and each of these
//! fails the run unless an explicit, commented list allows it: an error
//! that neither botai's checks nor PostgreSQL's refusal of an argument
//! explain (`ALLOWED`), a timeout (57014, `ALLOWED_TIMEOUTS`), a crash line
//! in the server log, an alert rule failing, a reader (views, health,
//! metrics) failing on the state the run left, and the daemon's own
//! readers — its API, `botai status|positions|orders` — failing or
//! panicking on it.
//!
//! `FUZZ_SEED` (printed at the start) reproduces the stream of generated
//! calls; `FUZZ_CALLS` sets their number (default 100,000). Ids of existing
//! rows and "now" are read at the moment of the call, so every finding is
//! printed with its SQL (control and invisible characters shown as \u{..}),
//! and written exactly to `target/fuzz/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botai_tests::{connect_to, env_or, repo_root, sqlstate, TestDatabase};
use tokio_postgres::SimpleQueryMessage;

use checks::{check_balances, daemon_readers, probe_admission};
use generator::{shorten, Pools};
use plan::{discover, Plan};
use run::{refresh_pools, run_session, seed_state, FunctionStats, Report, Shared};

mod checks;
mod generator;
mod plan;
mod run;

const DEFAULT_SEED: u64 = 0x5EED_B07A_1F22;
const DEFAULT_CALLS: u64 = 100_000;
/// Calls with a 10 MB argument per 100,000 calls (they are slow).
const HUGE_PER_100K: u64 = 20;
const HUGE_BYTES: usize = 10 * 1024 * 1024;
const STATEMENT_TIMEOUT: &str = "5s";
/// Statement timeout plus a margin: no transaction of the run lasts longer.
const LONGEST_TRANSACTION: &str = "6 seconds";
const PROGRESS_EVERY: u64 = 10_000;
/// Findings printed per function (all are counted).
const SHOWN_PER_FUNCTION: usize = 6;

/// The SQLSTATEs the SQL API documents for bad input (and full shared
/// memory). Anything else raised inside a function is listed with a sample;
/// only XX000 fails.
const DOCUMENTED: &[&str] = &["22023", "22004", "22003", "P0002", "55000", "55006", "53200", "54000", "42501"];

#[derive(Clone, Copy, Debug)]
enum Role {
    Superuser,
    Service,
    Reader,
    Engine,
    Ml,
    Alerter,
    Operator,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Superuser => "superuser",
            Role::Service => "botai_service",
            Role::Reader => "botai_reader",
            Role::Engine => "botai_engine",
            Role::Ml => "botai_ml",
            Role::Alerter => "botai_alerter",
            Role::Operator => "botai_operator",
        }
    }
}

/// The sessions of the run and their roles: every role of botai (README
/// "Roles and rights"), the convenience login and the superuser twice.
const SESSIONS: [Role; 8] = [
    Role::Superuser,
    Role::Service,
    Role::Reader,
    Role::Engine,
    Role::Operator,
    Role::Service,
    Role::Alerter,
    Role::Ml,
];

/// Outcomes outside the documented refusals that a run may meet, each
/// with why it is right (function, SQLSTATE, origin, why). Anything else
/// fails the run: a finding that is only printed proves nothing.
const ALLOWED: &[(&str, &str, &str, &str)] = &[
    // Generated arguments also hit the checks PostgreSQL's own functions
    // make inside botai's SQL functions; listed as they are met.
];

/// Functions whose calls may meet the statement timeout, and why.
const ALLOWED_TIMEOUTS: &[(&str, &str)] = &[];

fn server_log() -> PathBuf {
    PathBuf::from(env_or("FUZZ_SERVER_LOG", "/var/log/postgresql/postgresql-15-botai.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_survives_hostile_arguments() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            }
            .expect("FUZZ_SEED: a number (decimal or 0x…)")
        })
        .unwrap_or(DEFAULT_SEED);
    let calls: u64 = env_or("FUZZ_CALLS", &DEFAULT_CALLS.to_string()).parse().expect("FUZZ_CALLS: a number");
    println!("fuzz: seed {seed:#x} (FUZZ_SEED={seed:#x} reproduces it), {calls} calls (FUZZ_CALLS)");

    // A database of its own, made like the real one (botai db migrate), so
    // the hostile state the run leaves (balances of odd exchanges, components,
    // workers) never reaches other tests; FUZZ_DATABASE names an existing one
    // instead, FUZZ_KEEP_DATABASE=1 keeps the new one for inspection.
    let (database, own) = match std::env::var("FUZZ_DATABASE").ok().filter(|d| !d.is_empty()) {
        Some(name) => (name, None),
        None => {
            let db = TestDatabase::migrated(&[]).await;
            (db.name.clone(), Some(db))
        }
    };
    println!("  database {database}");
    let admin = connect_to(&database).await;
    let functions = discover(&admin).await;
    assert!(!functions.is_empty(), "no botai_* functions found: is the extension installed in this database?");
    println!("  {} functions:", functions.len());
    for f in &functions {
        println!("    {}({})", f.name, f.identity);
    }
    let seeder = connect_to(&database).await;
    seed_state(&seeder).await;

    let sentinel = connect_to(&database).await;
    let postmaster_started: String =
        sentinel.query_one("SELECT pg_postmaster_start_time()::text", &[]).await.unwrap().get(0);
    let log_start = std::fs::metadata(server_log()).map(|m| m.len()).ok();

    let findings_dir = repo_root().join("target/fuzz");
    let _ = std::fs::remove_dir_all(&findings_dir);
    std::fs::create_dir_all(&findings_dir).unwrap();
    let shared = Arc::new(Shared {
        database: database.clone(),
        plan: Plan::new(seed, calls, functions),
        done: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        pools: Mutex::new(Arc::new(Pools::default())),
        in_flight: SESSIONS.iter().map(|_| Mutex::new(String::new())).collect(),
        started: Instant::now(),
        findings_dir,
        file_counter: AtomicU64::new(0),
    });
    let refresher = tokio::spawn(refresh_pools(seeder, shared.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let roles: Vec<&str> = SESSIONS.iter().map(|r| r.label()).collect();
    println!("  {} sessions: {}; statement_timeout {STATEMENT_TIMEOUT}", SESSIONS.len(), roles.join(", "));

    let handles: Vec<_> =
        SESSIONS.iter().enumerate().map(|(i, &role)| tokio::spawn(run_session(i, role, shared.clone()))).collect();
    let mut report = Report::default();
    for h in handles {
        report.merge(h.await.expect("a fuzz session panicked"));
    }
    shared.finished.store(true, Ordering::Relaxed);
    let seeder = refresher.await.unwrap();
    let elapsed = shared.started.elapsed().as_secs_f64();
    let done = shared.done.load(Ordering::Relaxed);
    println!("\n{done} calls in {elapsed:.1} s: {:.0} calls/s", done as f64 / elapsed);

    // The table: function, calls, outcomes by SQLSTATE.
    println!("\n{:<34} {:>7}  outcomes (SQLSTATE × calls)  slowest", "function", "calls");
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for (name, s) in &report.functions {
        let mut outcomes: Vec<(&String, &u64)> = s.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = outcomes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("{name:<34} {:>7}  {}  {:.0} ms", s.calls, text.join(" "), s.slowest.as_secs_f64() * 1e3);
        for (code, n) in &s.outcomes {
            *totals.entry(code.clone()).or_default() += n;
        }
    }
    let never: Vec<&str> = shared
        .plan
        .functions
        .iter()
        .filter(|f| !report.functions.contains_key(&f.name))
        .map(|f| f.name.as_str())
        .collect();
    let totals: Vec<String> = totals.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    println!("{:<34} {done:>7}  {}", "all", totals.join(" "));

    println!("\nBy role:");
    for (role, outcomes) in &report.roles {
        let mut outcomes: Vec<(&String, &u64)> = outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = outcomes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("  {role:<14} {}", text.join(" "));
    }
    let mut origins: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, _, origin), s) in &report.samples {
        *origins.entry(origin).or_default() += s.count;
    }
    let origins: Vec<String> = origins.iter().map(|(o, n)| format!("{o} ×{n}")).collect();
    println!("\nErrors by origin: {}", origins.join(", "));
    println!(
        "\nOne sample per function, SQLSTATE and origin, except the documented refusals raised by botai ({}), \
         arguments PostgreSQL refused before the call, missing privileges and XX000:",
        DOCUMENTED.join(", ")
    );
    let mut undocumented = Vec::new();
    for ((function, code, origin), s) in &report.samples {
        let expected = (DOCUMENTED.contains(&code.as_str()) && *origin == "raised by botai")
            || matches!(
                *origin,
                "PostgreSQL refused an argument" | "no EXECUTE privilege" | "a trigger function, not callable"
            )
            || code == "XX000"
            || code == "57014";
        if expected {
            continue;
        }
        let allowed = ALLOWED.iter().any(|(f, c, o, _)| (*f == "*" || f == function) && c == code && o == origin);
        let line =
            format!("  {function} {code} ({origin}) ×{}: {}\n      as {}: {}", s.count, s.message, s.role, s.call);
        println!("{}{line}", if allowed { "(allowed) " } else { "" });
        if !allowed {
            undocumented.push(line);
        }
    }
    let timeouts: Vec<String> = report
        .samples
        .iter()
        .filter(|((_, code, _), _)| code == "57014")
        .map(|((function, _, _), s)| format!("    {function} ×{}: as {}: {}", s.count, s.role, s.call))
        .collect();
    let timed_out: u64 = report.samples.iter().filter(|((_, code, _), _)| code == "57014").map(|(_, s)| s.count).sum();
    println!("\nTimeouts (57014, statement_timeout {STATEMENT_TIMEOUT}): {timed_out} calls");
    for t in &timeouts {
        println!("{t}");
    }
    let mut slow: Vec<(&String, &FunctionStats)> = report.functions.iter().collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1.slowest));
    println!("\nSlowest calls:");
    for (name, s) in slow.iter().take(5) {
        println!("  {name}: {:.0} ms: {}", s.slowest.as_secs_f64() * 1e3, shorten(&s.slowest_call, 400));
    }

    let mut failures = Vec::new();
    if !undocumented.is_empty() {
        failures.push(format!(
            "outcomes that are neither a documented refusal nor in ALLOWED (decide: fix botai, or allow with why):\n{}",
            undocumented.join("\n")
        ));
    }
    let unexplained_timeouts: Vec<&String> = timeouts
        .iter()
        .filter(|t| !ALLOWED_TIMEOUTS.iter().any(|(f, _)| t.trim_start().starts_with(&format!("{f} "))))
        .collect();
    if !unexplained_timeouts.is_empty() {
        failures.push(format!(
            "calls that met the statement timeout ({STATEMENT_TIMEOUT}) and are not in ALLOWED_TIMEOUTS:\n{}",
            unexplained_timeouts.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("\n")
        ));
    }
    if !never.is_empty() {
        failures.push(format!("functions never called: {}", never.join(", ")));
    }
    if !report.lost.is_empty() {
        failures.push(format!("connections lost (a backend crashed?):\n{}", report.lost.join("\n")));
    }

    // 1. The sentinel session is still there: no crash-restart.
    match sentinel.simple_query("SELECT 1").await {
        Ok(_) => println!("\n  ok: the sentinel session opened before the run still answers"),
        Err(e) => failures.push(format!("the sentinel session died: a backend crashed and the server restarted ({e})")),
    }
    // 2. Nor a restart of any kind.
    let check = connect_to(&database).await;
    let now_started: String = check.query_one("SELECT pg_postmaster_start_time()::text", &[]).await.unwrap().get(0);
    if now_started == postmaster_started {
        println!("  ok: pg_postmaster_start_time() unchanged ({now_started})");
    } else {
        failures.push(format!("the postmaster restarted: started {postmaster_started}, now {now_started}"));
    }
    // Crashes during the run show in the server log: unreadable, they would
    // go unseen, so that fails too.
    let readable = std::fs::read(server_log()).map(|_| ()).map_err(|e| e.to_string());
    if log_start.is_none() || readable.is_err() {
        failures.push(format!(
            "the server log {} cannot be read ({}): crashes during the run would go unseen (FUZZ_SERVER_LOG names it)",
            server_log().display(),
            readable.err().unwrap_or_else(|| "its size was unknown at the start".into())
        ));
    }
    if let Some(start) = log_start {
        if let Ok(log) = std::fs::read(server_log()) {
            let new = String::from_utf8_lossy(&log[(start as usize).min(log.len())..]).into_owned();
            let bad: Vec<&str> = new
                .lines()
                .filter(|l| {
                    l.contains("was terminated by signal") || l.contains("PANIC") || l.contains("server process")
                })
                .take(10)
                .collect();
            println!("  server log during the run: {} crash lines {}", bad.len(), bad.join("\n    "));
            if !bad.is_empty() {
                failures.push(format!("the server log has crash lines from the run:\n    {}", bad.join("\n    ")));
            }
        }
    }
    // 3. No internal errors.
    let internal: u64 = report.internal.values().map(|s| s.count).sum();
    if internal == 0 {
        println!("  ok: no call ended in XX000");
    } else {
        let mut text = format!("{internal} calls ended in XX000 (internal error):");
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for ((function, _), s) in &report.internal {
            let n = shown.entry(function.as_str()).or_default();
            *n += 1;
            if *n > SHOWN_PER_FUNCTION {
                continue;
            }
            let _ = write!(
                text,
                "\n  {function} ×{}: {}\n      as {}: {}\n      full SQL: {}",
                s.count,
                s.message,
                s.role,
                s.call,
                s.file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not saved".into())
            );
        }
        failures.push(text);
    }
    // 4. The balances are consistent, and reserving on what the run left
    // keeps them so.
    println!("\nReserving until refused on the state the run left:");
    probe_admission(&database, &check, &mut failures).await;
    println!("\nBalances:");
    check_balances(&check, &mut failures).await;

    // What the fuzzed state did to the readers and the monitor (reported).
    println!("\nAfter the run:");
    for sql in [
        "SELECT length(botai_metrics())::text",
        "SELECT length(botai_health()::text)::text",
        "SELECT length(botai_worker_stats()::text)::text",
        "SELECT botai_monitor_state()::text",
        "SELECT count(*)::text FROM botai.balances_status",
        "SELECT count(*)::text FROM botai.orders_status",
        "SELECT count(*)::text FROM botai.components_status",
    ] {
        match check.simple_query(sql).await {
            Ok(rows) => {
                let value = rows
                    .iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                        _ => None,
                    })
                    .unwrap_or_default();
                println!("  {sql}: {}", shorten(&value, 300));
            }
            Err(e) => failures.push(format!(
                "a reader fails on the state the run left: {sql}: ERROR {} {}",
                sqlstate(&e).unwrap_or_default(),
                shorten(e.as_db_error().map(|d| d.message()).unwrap_or_default(), 300)
            )),
        }
    }
    let rule_errors = check
        .query("SELECT rule || ': ' || last_error FROM botai.rule_status WHERE last_error IS NOT NULL", &[])
        .await
        .expect("rule_status");
    println!("  alert rules failing: {}", rule_errors.len());
    if !rule_errors.is_empty() {
        let listed: Vec<String> = rule_errors.iter().map(|r| shorten(&r.get::<_, String>(0), 300)).collect();
        failures.push(format!("alert rules fail on the state the run left:\n    {}", listed.join("\n    ")));
    }
    // The daemon's readers over the same state: its API and the operator's
    // commands answer, showing what they cannot hold as out of range.
    println!("\nThe daemon's readers:");
    daemon_readers(&database, &mut failures).await;
    drop(seeder);
    if let Some(db) = own {
        if env_or("FUZZ_KEEP_DATABASE", "") == "1" {
            println!("  kept database {} (FUZZ_KEEP_DATABASE=1)", db.name);
            std::mem::forget(db);
        }
    }

    if !failures.is_empty() {
        panic!("fuzz (seed {seed:#x}) found:\n\n{}", failures.join("\n\n"));
    }
}

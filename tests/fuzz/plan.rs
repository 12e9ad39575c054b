//! The functions, read from the catalog, and the plan of the calls: which
//! function each call is of, and its arguments.

use std::collections::HashSet;

use chrono::Utc;
use tokio_postgres::Client;

use crate::generator::{call_rng, shorten, Gen, Lit, Pools, Rng, EDGE_PAIRS};
use crate::HUGE_PER_100K;

#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) ty: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Function {
    pub(crate) name: String,
    /// schema.name, quoted.
    call: String,
    procedure: bool,
    pub(crate) identity: String,
    args: Vec<Param>,
    defaults: usize,
}

/// Every function of the extension whose name starts with botai_.
pub(crate) async fn discover(db: &Client) -> Vec<Function> {
    let rows = db
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), p.proname::text, p.prokind::text, \
                    pg_get_function_identity_arguments(p.oid), p.pronargdefaults::int4, \
                    ARRAY(SELECT format_type(a.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i) \
                          ORDER BY a.i), \
                    p.proargmodes::text[], p.proargnames \
             FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e' \
             JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND e.oid = d.refobjid \
             WHERE e.extname = 'botai' AND p.proname LIKE 'botai\\_%' \
             ORDER BY p.proname, 4",
            &[],
        )
        .await
        .expect("read the functions of the botai extension");
    rows.iter()
        .map(|r| {
            let types: Vec<String> = r.get(5);
            let modes: Option<Vec<String>> = r.get(6);
            let names: Vec<String> = r.get::<_, Option<Vec<String>>>(7).unwrap_or_default();
            // proargnames covers every argument, OUT and TABLE columns too.
            let input_names: Vec<String> = match modes {
                None => names,
                Some(modes) => modes
                    .iter()
                    .zip(names.iter().map(Some).chain(std::iter::repeat(None)))
                    .filter(|(m, _)| matches!(m.as_str(), "i" | "b" | "v"))
                    .map(|(_, n)| n.cloned().unwrap_or_default())
                    .collect(),
            };
            let args = types
                .into_iter()
                .enumerate()
                .map(|(i, ty)| Param { name: input_names.get(i).cloned().unwrap_or_default(), ty })
                .collect();
            Function {
                call: r.get(0),
                name: r.get(1),
                procedure: r.get::<_, String>(2) == "p",
                identity: r.get(3),
                defaults: r.get::<_, i32>(4) as usize,
                args,
            }
        })
        .collect()
}

/// Calls per function: the ones that write and branch most get more.
fn weight(f: &Function) -> u64 {
    const DEEP: &[&str] = &[
        "botai_register_signal",
        "botai_check_and_register_signal",
        "botai_reserve_balance",
        "botai_update_balance",
        "botai_commit_reservation",
        "botai_release_reservation",
        "botai_order_claim",
        "botai_order_finish",
        "botai_fingerprint",
    ];
    if f.args.is_empty() {
        1
    } else if DEEP.contains(&f.name.as_str()) {
        5
    } else {
        3
    }
}

pub(crate) struct Call {
    pub(crate) function: usize,
    pub(crate) sql: String,
    /// The arguments alone, comma-separated.
    pub(crate) args: String,
    /// The SQL with long arguments shortened.
    pub(crate) shown: String,
}

pub(crate) struct Plan {
    seed: u64,
    pub(crate) calls: u64,
    pub(crate) functions: Vec<Function>,
    cumulative: Vec<u64>,
    /// Functions with a text or jsonb argument (candidates for 10 MB ones).
    stringly: Vec<usize>,
    huge_calls: HashSet<u64>,
}

impl Plan {
    pub(crate) fn new(seed: u64, calls: u64, functions: Vec<Function>) -> Plan {
        let mut total = 0;
        let cumulative = functions
            .iter()
            .map(|f| {
                total += weight(f);
                total
            })
            .collect();
        let stringly = (0..functions.len())
            .filter(|&i| functions[i].args.iter().any(|p| matches!(p.ty.as_str(), "text" | "jsonb")))
            .collect();
        let wanted = (calls * HUGE_PER_100K).div_ceil(100_000).min(calls);
        let mut rng = Rng::new(seed ^ 0x4855_4745);
        let mut huge_calls = HashSet::new();
        while (huge_calls.len() as u64) < wanted {
            huge_calls.insert(rng.next() % calls);
        }
        Plan { seed, calls, functions, cumulative, stringly, huge_calls }
    }

    pub(crate) fn call(&self, index: u64, pools: &Pools) -> Call {
        let mut rng = call_rng(self.seed, index);
        let huge = self.huge_calls.contains(&index) && !self.stringly.is_empty();
        let function = if huge {
            *rng.pick(&self.stringly)
        } else {
            let total = *self.cumulative.last().expect("functions");
            let r = rng.next() % total;
            self.cumulative.partition_point(|&c| c <= r)
        };
        let f = &self.functions[function];
        let huge_arg = if huge {
            let candidates: Vec<usize> =
                (0..f.args.len()).filter(|&i| matches!(f.args[i].ty.as_str(), "text" | "jsonb")).collect();
            Some(*rng.pick(&candidates))
        } else {
            None
        };
        let mut count = f.args.len();
        if f.defaults > 0 && !huge && rng.chance(12) {
            count -= 1 + rng.below(f.defaults);
        }
        let mut g = Gen { rng, pools, function: &f.name, now: Utc::now(), huge_arg };
        // A third of the calls are valid but for at most one argument, so
        // they get past the checks into the statements; the rest are hostile
        // throughout.
        let mut lits: Vec<Lit> = if !huge && g.rng.chance(35) {
            let hostile = if count > 0 && g.rng.chance(70) { Some(g.rng.below(count)) } else { None };
            (0..count).map(|i| if Some(i) == hostile { g.value(i, &f.args[i]) } else { g.valid(&f.args[i]) }).collect()
        } else {
            (0..count).map(|i| g.value(i, &f.args[i])).collect()
        };
        // Fresh signals at the ends of both calendars.
        let signal = f.args.iter().position(|p| p.name == "signal" && p.ty == "jsonb");
        let now = f.args.iter().position(|p| p.name == "now" && p.ty.starts_with("timestamp"));
        if let (Some(s), Some(n), false) = (signal, now, huge) {
            if g.rng.chance(10) {
                let (now_value, ts) = *g.rng.pick(EDGE_PAIRS);
                while lits.len() <= s.max(n) {
                    lits.push(Lit::Null);
                }
                lits[s] = Lit::Text(format!(
                    r#"{{"symbol":"FZEDGE{}","direction":"BUY","strategy":"s","timestamp":"{ts}"}}"#,
                    g.rng.below(1000)
                ));
                lits[n] = Lit::text(now_value);
            }
        }
        let args: Vec<String> = lits.iter().zip(&f.args).map(|(l, p)| l.sql(&p.ty)).collect();
        let shown: Vec<String> = args.iter().map(|a| shorten(a, 240)).collect();
        let verb = if f.procedure { "CALL" } else { "SELECT * FROM" };
        Call {
            function,
            args: args.join(", "),
            sql: format!("{verb} {}({})", f.call, args.join(", ")),
            shown: format!("{verb} {}({})", f.call, shown.join(", ")),
        }
    }
}

//! The limits of `botai.rate_limits`, cached per backend and dropped at
//! once when the table changes (a relcache invalidation sent by its trigger).

use super::*;

#[derive(Debug, Clone)]
pub(super) struct LimitRow {
    pub(super) endpoint: String,
    pub(super) max_weight: i32,
    pub(super) window_seconds: f64,
    pub(super) default_weight: i32,
}

impl LimitRow {
    pub(super) fn window(&self) -> Window {
        let margin = gucs::RATE_LIMIT_SAFETY_MARGIN.get();
        Window {
            limit: (f64::from(self.max_weight) * margin).floor().max(0.0) as u64,
            // The window as botai books it: the venue's, plus the allowance
            // for requests sent late (botai.rate_limit_send_jitter).
            length_us: (self.window_seconds * 1e6).round().max(1.0) as i64
                + i64::from(gucs::RATE_LIMIT_SEND_JITTER.get()) * 1000,
        }
    }
}

thread_local! {
    /// exchange → its rows; cleared by the relcache callback.
    static LIMITS: RefCell<HashMap<String, Rc<[LimitRow]>>> = RefCell::new(HashMap::new());
    /// OID of botai.rate_limits in this database, once known.
    static LIMITS_RELID: RefCell<Option<pg_sys::Oid>> = const { RefCell::new(None) };
    /// "exchange\0endpoint" → index of its key in shared memory.
    pub(super) static KEY_INDEX: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// Registered once in _PG_init; runs in every backend when a relcache
/// invalidation arrives.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let ours = LIMITS_RELID.with(|r| *r.borrow());
    if relid == pg_sys::InvalidOid || Some(relid) == ours {
        LIMITS.with(|l| l.borrow_mut().clear());
        if relid == pg_sys::InvalidOid {
            LIMITS_RELID.with(|r| *r.borrow_mut() = None);
        }
    }
}

pub fn init() {
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0)) };
}

mod invalidation {
    use pgrx::prelude::*;

    /// Sends a relcache invalidation for botai.rate_limits at commit, so
    /// every backend reloads the limits before its next statement.
    #[pg_trigger]
    fn botai_rate_limits_changed<'a>(
        trigger: &'a PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
        let relid = trigger.relid().expect("a trigger knows its table");
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
        Ok(None)
    }

    pgrx::extension_sql!(
        r#"
CREATE TRIGGER rate_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON botai.rate_limits
    FOR EACH STATEMENT EXECUTE FUNCTION botai_rate_limits_changed();
"#,
        name = "rate_limits_trigger",
        requires = ["schema", botai_rate_limits_changed]
    );
}

pub(super) static LOAD_LIMITS: Statement = Statement::new(
    "ratelimit.load",
    "SELECT endpoint, max_weight, window_seconds, default_weight, 'botai.rate_limits'::regclass::oid \
     FROM botai.rate_limits WHERE exchange = $1",
);

pub(super) fn limits_of(exchange: &str) -> Result<Rc<[LimitRow]>> {
    if let Some(rows) = LIMITS.with(|l| l.borrow().get(exchange).cloned()) {
        return Ok(rows);
    }
    let (rows, relid) = reading(|client| {
        let table = LOAD_LIMITS.read(client, &[exchange.into()])?;
        let mut rows = Vec::new();
        let mut relid = None;
        for r in table {
            rows.push(LimitRow {
                endpoint: r.get::<String>(1)?.unwrap_or_default(),
                max_weight: r.get::<i32>(2)?.unwrap_or(0),
                window_seconds: r.get::<f64>(3)?.unwrap_or(1.0),
                default_weight: r.get::<i32>(4)?.unwrap_or(1),
            });
            relid = r.get::<pg_sys::Oid>(5)?;
        }
        Ok::<_, BotaiError>((rows, relid))
    })?;
    if relid.is_some() {
        LIMITS_RELID.with(|r| *r.borrow_mut() = relid);
    }
    let rows: Rc<[LimitRow]> = rows.into();
    // An exchange without rows is not cached: its rows may be added later,
    // and the relcache callback can only invalidate what it knows of.
    if !rows.is_empty() {
        LIMITS.with(|l| l.borrow_mut().insert(exchange.to_owned(), rows.clone()));
    }
    Ok(rows)
}

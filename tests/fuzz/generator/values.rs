//! Arguments by their declared type: a valid value of the kind the
//! argument means, or a hostile one (JSON documents: `documents.rs`).

use crate::plan::Param;
use crate::HUGE_BYTES;

use super::inputs::*;
use super::*;

impl Gen<'_> {
    /// A value the function accepts, of the kind its argument means.
    pub(crate) fn valid(&mut self, param: &Param) -> Lit {
        let rate = self.function.contains("rate");
        let name = param.name.as_str();
        match param.ty.as_str() {
            "text" => {
                let list: &[&str] = match name {
                    "exchange" if rate => &["bybit", "binance", "paper"],
                    "exchange" => &["fuzz", "fuzz", "fuzz", "paper"],
                    "asset" => &["USDT", "USDT", "BTC"],
                    "endpoint" => &["order", "global", "market_data", "account"],
                    "status" if self.function == "botai_worker_heartbeat" => &["running", "idle", "busy", "error"],
                    "status" if self.function == "botai_heartbeat" => &["healthy", "degraded", "unhealthy", "stopped"],
                    "status" => &["filled", "rejected", "failed", "skipped", "expired"],
                    "purpose" => &["order", "fuzz"],
                    "dedup_key" => &["k1", "k2", "k3"],
                    "error" => &["boom", "timeout talking to bybit"],
                    _ => return Lit::text(self.valid_name(name)),
                };
                Lit::text(*self.rng.pick(list))
            }
            "jsonb" => Lit::Text(match name {
                "signal" => {
                    let ts = self.fresh_timestamp();
                    format!(
                        r#"{{"symbol":"FZ{}USDT","direction":"{}","strategy":"s","timestamp":"{ts}"}}"#,
                        self.rng.below(400),
                        self.rng.pick(&["BUY", "SELL"])
                    )
                }
                "details" => {
                    let id = if self.pools.reservations.is_empty() {
                        "null".to_owned()
                    } else {
                        json_str(self.rng.pick(&self.pools.reservations))
                    };
                    format!(r#"{{"qty":"0.01","price":100.5,"fee":0.06,"ret_code":0,"reservation_id":{id}}}"#)
                }
                _ => self.rng.pick(&["{}", r#"{"job":1}"#, r#"{"memory_percent":42.5}"#]).to_string(),
            }),
            "numeric" => Lit::text(match name {
                "amount" => *self.rng.pick(&["1", "5", "10", "0.5", "20"]),
                "locked" => "0",
                _ => *self.rng.pick(&["1000", "1000", "900"]),
            }),
            "integer" => Lit::text(match name {
                "active_tasks" => "1",
                "weight" => "1",
                "max_rows" => "100",
                _ => "5",
            }),
            "bigint" => {
                let pool = match name {
                    "task_id" => &self.pools.tasks,
                    "signal_id" => &self.pools.signals,
                    _ => &self.pools.orders,
                };
                if pool.is_empty() {
                    Lit::text("1")
                } else {
                    Lit::Text(self.rng.pick(pool).to_string())
                }
            }
            "uuid" if !self.pools.reservations.is_empty() => Lit::Text(self.rng.pick(&self.pools.reservations).clone()),
            "boolean" => Lit::text(*self.rng.pick(&["true", "false"])),
            "double precision" => Lit::text(*self.rng.pick(&["1", "5", "0.5"])),
            "interval" => Lit::text(match name {
                "ttl" => *self.rng.pick(&["5 minutes", "2 seconds", "30 seconds"]),
                _ => "1 hour",
            }),
            "timestamp with time zone" => match name {
                "now" if self.rng.chance(50) => Lit::Null,
                "ts" => Lit::Text(self.now.format("%Y-%m-%d %H:%M:%S+00").to_string()),
                _ => Lit::Expr("now()".into()),
            },
            _ => self.value(usize::MAX, param),
        }
    }

    pub(crate) fn value(&mut self, position: usize, param: &Param) -> Lit {
        if self.huge_arg == Some(position) {
            return self.huge(&param.ty);
        }
        if self.rng.chance(7) {
            return Lit::Null;
        }
        match param.ty.as_str() {
            "text" | "character varying" | "name" => self.text(&param.name),
            "jsonb" | "json" => Lit::Text(self.jsonb(&param.name)),
            "numeric" => self.numeric(&param.name),
            "integer" | "smallint" => self.int4(&param.name),
            "bigint" => self.int8(&param.name),
            "double precision" | "real" => self.float8(&param.name),
            "boolean" => Lit::text(*self.rng.pick(&["true", "false", "t", "off"])),
            "uuid" => self.uuid(),
            "interval" => self.interval(&param.name),
            "timestamp with time zone" | "timestamp without time zone" | "date" => self.timestamptz(),
            _ => {
                if self.rng.chance(50) {
                    Lit::Null
                } else {
                    Lit::Text(hostile_text(&mut self.rng))
                }
            }
        }
    }

    fn huge(&mut self, ty: &str) -> Lit {
        if ty == "jsonb" || ty == "json" {
            let filler = "x".repeat(HUGE_BYTES);
            let doc = match self.rng.below(3) {
                0 => format!(
                    r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","x":"{filler}"}}"#,
                    self.fresh_timestamp()
                ),
                1 => format!(
                    r#"{{"symbol":"{filler}","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}}"#
                ),
                _ => format!("[{}1]", "1,".repeat(HUGE_BYTES / 2)),
            };
            return Lit::Text(doc);
        }
        let unit = *self.rng.pick(&["x", "é", "bybit ", "\u{1}", " "]);
        Lit::Text(unit.repeat(HUGE_BYTES / unit.len()))
    }

    fn text(&mut self, name: &str) -> Lit {
        let roll = self.rng.below(100);
        if roll < 45 {
            Lit::text(self.valid_name(name))
        } else if roll < 50 {
            Lit::Raw(self.rng.pick(INVALID_ESCAPES).to_string())
        } else if roll < 51 {
            Lit::Expr("convert_from('\\xff'::bytea, 'UTF8')".into())
        } else {
            Lit::Text(hostile_text(&mut self.rng))
        }
    }

    /// A name that passes validation, fitting the argument's meaning most of
    /// the time (so the call gets past the checks).
    fn valid_name(&mut self, name: &str) -> String {
        let list: &[&str] = if self.rng.chance(15) {
            const ALL: [&[&str]; 8] =
                [EXCHANGES, ASSETS, ENDPOINTS, WORKER_TYPES, WORKER_IDS, STATUSES, COMPONENTS, OTHER_NAMES];
            self.rng.pick::<&[&str]>(&ALL)
        } else {
            match name {
                "exchange" => EXCHANGES,
                "asset" => ASSETS,
                "endpoint" => ENDPOINTS,
                "worker_type" => WORKER_TYPES,
                "worker_id" | "engine" => {
                    if !self.pools.workers.is_empty() && self.rng.chance(40) {
                        return self.rng.pick(&self.pools.workers).clone();
                    }
                    WORKER_IDS
                }
                "status" => STATUSES,
                "component" => {
                    if !self.pools.components.is_empty() && self.rng.chance(30) {
                        return self.rng.pick(&self.pools.components).clone();
                    }
                    COMPONENTS
                }
                "symbol" => SYMBOLS,
                "direction" => DIRECTIONS,
                "strategy" => STRATEGIES,
                _ => OTHER_NAMES,
            }
        };
        self.rng.pick(list).to_string()
    }

    fn numeric(&mut self, name: &str) -> Lit {
        let roll = self.rng.below(100);
        if roll < 40 {
            let amounts: &[&str] = if name == "amount" {
                &["1", "5", "10", "0.01", "0.00000001", "4", "100", "980.3921568627451", "999.999999999999999999"]
            } else {
                &["1000", "1000", "100", "0", "1", "980", "1000.0000000001", "999.99", "10"]
            };
            return Lit::text(*self.rng.pick(amounts));
        }
        match roll {
            40..=44 => Lit::Text(format!("0.{}1", "0".repeat(999))),
            45..=46 => Lit::Text(format!("0.{}1", "0".repeat(16_382))),
            47 => Lit::Text(format!("0.{}1", "0".repeat(16_383))),
            48 => Lit::Expr("repeat('9', 131072)::numeric".into()),
            49 => Lit::Expr("(repeat('9', 131072) || '.' || repeat('9', 16383))::numeric".into()),
            50 => Lit::Expr("repeat('9', 131072)::numeric + 1".into()),
            51..=52 => Lit::Text("9".repeat(1000)),
            53 => Lit::Raw(self.rng.pick(INVALID_ESCAPES).to_string()),
            _ => Lit::text(*self.rng.pick(NUMERIC_EDGES)),
        }
    }

    fn int4(&mut self, name: &str) -> Lit {
        if self.rng.chance(45) {
            let usual: &[i64] = match name {
                "active_tasks" => &[0, 1, 3],
                "weight" => &[1, 2, 5, 10],
                "max_rows" => &[1, 10, 100, 1000],
                "minutes" => &[1, 5, 60, 1440],
                _ => &[0, 1, 5, 100],
            };
            return Lit::Text(self.rng.pick(usual).to_string());
        }
        let v: i64 = match self.rng.below(10) {
            0 => i64::from(i32::MIN),
            1 => i64::from(i32::MAX),
            2 => -1,
            3 => 0,
            4 => 65_536,
            5 => i64::from(i32::MAX) + 1,
            6 => i64::from(self.rng.next() as i32),
            7 => 1_000_000,
            _ => self.rng.between(-10, 10),
        };
        Lit::Text(v.to_string())
    }

    fn int8(&mut self, name: &str) -> Lit {
        if self.rng.chance(50) {
            let pool = match name {
                "task_id" => &self.pools.tasks,
                "signal_id" => &self.pools.signals,
                "order_id" => &self.pools.orders,
                _ => {
                    let pools = [&self.pools.tasks, &self.pools.signals, &self.pools.orders];
                    *self.rng.pick(&pools)
                }
            };
            if !pool.is_empty() {
                return Lit::Text(self.rng.pick(pool).to_string());
            }
        }
        let v: i128 = match self.rng.below(8) {
            0 => i128::from(i64::MIN),
            1 => i128::from(i64::MAX),
            2 => -1,
            3 => 0,
            4 => i128::from(i64::MAX) + 1,
            5 => i128::from(self.rng.next() as i64),
            _ => i128::from(self.rng.between(1, 100_000)),
        };
        Lit::Text(v.to_string())
    }

    fn float8(&mut self, name: &str) -> Lit {
        if name == "seconds" && self.rng.chance(40) {
            return Lit::text(*self.rng.pick(&["0.001", "1", "5", "60"]));
        }
        Lit::text(*self.rng.pick(FLOAT_EDGES))
    }

    fn uuid(&mut self) -> Lit {
        let roll = self.rng.below(100);
        if roll < 55 && !self.pools.reservations.is_empty() {
            return Lit::Text(self.rng.pick(&self.pools.reservations).clone());
        }
        match roll % 6 {
            0 => Lit::text("00000000-0000-0000-0000-000000000000"),
            1 => Lit::text("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            2 => Lit::text(*self.rng.pick(&["not-a-uuid", "", "{00000000-0000-0000-0000-000000000000}"])),
            3 => {
                // Time-ordered like the real ones (v7), from the far future.
                let (a, b) = (self.rng.next(), self.rng.next());
                Lit::Text(format!(
                    "ffff{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
                    a & 0xffff,
                    (a >> 16) & 0xffff,
                    (a >> 32) & 0xfff,
                    b & 0xfff,
                    (b >> 16) & 0xffff_ffff_ffff
                ))
            }
            _ => {
                let (a, b) = (self.rng.next(), self.rng.next());
                Lit::Text(format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    a & 0xffff_ffff,
                    (a >> 32) & 0xffff,
                    (a >> 48) & 0xfff,
                    b & 0xfff,
                    (b >> 16) & 0xffff_ffff_ffff
                ))
            }
        }
    }

    fn interval(&mut self, name: &str) -> Lit {
        if self.rng.chance(40) {
            let usual: &[&str] = match name {
                "ttl" => {
                    &["1 second", "2 seconds", "30 seconds", "5 minutes", "1 day", "23:59:59.999999", "1 microsecond"]
                }
                _ => &["1 hour", "1 day", "10 minutes", "7 days"],
            };
            return Lit::text(*self.rng.pick(usual));
        }
        Lit::text(*self.rng.pick(INTERVAL_EDGES))
    }

    fn timestamptz(&mut self) -> Lit {
        match self.rng.below(10) {
            0 => Lit::Expr("now()".into()),
            1 => Lit::Expr(
                (*self.rng.pick(&[
                    "now() - interval '1 minute'",
                    "now() + interval '59 seconds'",
                    "now() + interval '61 seconds'",
                    "now() - interval '1 day'",
                    "now() - interval '299 seconds'",
                    "clock_timestamp()",
                ]))
                .to_owned(),
            ),
            2 => Lit::Text(self.now.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()),
            _ => Lit::text(*self.rng.pick(TIMESTAMP_EDGES)),
        }
    }

    /// A timestamp inside the dedup window of now, in one of the accepted forms.
    pub(super) fn fresh_timestamp(&mut self) -> String {
        let t = self.now + chrono::Duration::seconds(self.rng.between(-280, 50));
        match self.rng.below(5) {
            0 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            1 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            2 => t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
            3 => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            _ => t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        }
    }
}

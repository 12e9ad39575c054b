//! JSON documents: signals valid or with one thing wrong, objects, and any
//! document at all.

use super::inputs::*;
use super::*;

impl Gen<'_> {
    pub(super) fn jsonb(&mut self, name: &str) -> String {
        let roll = self.rng.below(100);
        if roll < 15 {
            return self.hostile_document();
        }
        match name {
            "signal" => self.signal(),
            "metadata" | "details" | "result" | "payload" => self.object(name),
            _ if self.rng.chance(50) => self.signal(),
            _ => self.object(name),
        }
    }

    /// A signal document: valid and fresh, or with one thing wrong.
    fn signal(&mut self) -> String {
        let symbol = if self.rng.chance(60) {
            format!("FZ{}USDT", self.rng.below(400))
        } else {
            self.rng.pick(SYMBOLS).to_string()
        };
        let mut fields: Vec<(String, String)> = vec![
            ("symbol".into(), json_str(&symbol)),
            ("direction".into(), json_str(self.rng.pick(&["BUY", "SELL", "buy"]))),
            ("strategy".into(), json_str(self.rng.pick(&["s", "fuzz", "patchtst"]))),
            ("timestamp".into(), {
                let t = self.fresh_timestamp();
                json_str(&t)
            }),
        ];
        if self.rng.chance(40) {
            fields.push(("signal_strength".into(), "0.7".into()));
        }
        if self.rng.chance(30) {
            fields.push(("exchange".into(), json_str(self.rng.pick(&["fuzz", "ByBit", "paper"]))));
        }
        let mutations = match self.rng.below(100) {
            0..=34 => 0,
            35..=84 => 1,
            _ => 2,
        };
        for _ in 0..mutations {
            match self.rng.below(10) {
                0 => {
                    let i = self.rng.below(4.min(fields.len()));
                    fields.remove(i);
                }
                1 => {
                    let key = self.rng.pick(&["symbol", "timestamp", "direction"]).to_string();
                    let v = self.json_value(&key);
                    fields.push((key, v));
                }
                2 => {
                    let key =
                        if self.rng.chance(30) { json_str(&hostile_text(&mut self.rng)) } else { json_str("extra") };
                    // The escaped text between the quotes.
                    let key = key[1..key.len() - 1].to_owned();
                    let v = self.json_value("extra");
                    fields.push((key, v));
                }
                3 => {
                    let key = self.rng.pick(&["signal_strength", "exchange"]).to_string();
                    let v = self.json_value(&key);
                    fields.retain(|(k, _)| *k != key);
                    fields.push((key, v));
                }
                _ => {
                    let i = self.rng.below(fields.len());
                    let key = fields[i].0.clone();
                    fields[i].1 = self.json_value(&key);
                }
            }
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let doc = format!("{{{}}}", body.join(","));
        if self.rng.chance(3) {
            format!("[{doc}]")
        } else {
            doc
        }
    }

    /// A JSON value for `key`: wrong types, edges of its kind, huge and
    /// deeply nested values.
    fn json_value(&mut self, key: &str) -> String {
        let roll = self.rng.below(100);
        match key {
            "timestamp" if roll < 55 => json_str(self.rng.pick(BAD_SIGNAL_TIMESTAMPS)),
            "timestamp" if roll < 70 => {
                // A multibyte character at every byte position a slice might use.
                let t = self.now.format("%Y-%m-%dT%H:%M:%S").to_string();
                let at = 14 + self.rng.below(t.len() - 13);
                let c = *self.rng.pick(&["é", "ж", "🚀", "\u{202E}"]);
                json_str(&format!("{}{c}{}", &t[..at], &t[at..]))
            }
            "timestamp" if roll < 75 => {
                let t = self.fresh_timestamp();
                json_str(&format!("{t}{}", self.rng.pick(&["+0é", "é", "+03é0", "+ж", " ", "Z "])))
            }
            "signal_strength" if roll < 60 => self.rng.pick(JSON_NUMBERS).to_string(),
            "direction" if roll < 50 => json_str(self.rng.pick(&["HOLD", "BUY ", "ＢＵＹ", "bUy", "B\u{301}UY", ""])),
            "exchange" if roll < 40 => json_str(self.rng.pick(EXCHANGES)),
            _ => match self.rng.below(12) {
                0 => self.rng.pick(&["null", "true", "false", "[]", "{}", "[null]"]).to_string(),
                1 | 2 => self.rng.pick(JSON_NUMBERS).to_string(),
                3 => format!("0.{}1", "0".repeat(999)),
                4 => self.nested(),
                5 if self.rng.chance(10) => json_str(&"y".repeat(*self.rng.pick(&[65_536, 1_048_576]))),
                5 => json_str(&"y".repeat(*self.rng.pick(&[64, 65, 1000]))),
                6 => self
                    .rng
                    .pick(&[
                        r#""\u0000""#,
                        r#""BTC\u0000USDT""#,
                        r#""\\u0000""#,
                        r#""\ud800""#,
                        r#""\udc00\ud800""#,
                        r#""\ud83d\ude80""#,
                        r#""\uFFFF""#,
                        r#""\u0001\u001f""#,
                        r#""\u202e""#,
                    ])
                    .to_string(),
                _ => json_str(&hostile_text(&mut self.rng)),
            },
        }
    }

    fn nested(&mut self) -> String {
        let depth = *self.rng.pick(&[64, 127, 128, 129, 200, 2000, 10_000]);
        if self.rng.chance(50) {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
        }
    }

    /// An object argument (metadata, details, result, payload).
    fn object(&mut self, name: &str) -> String {
        match self.rng.below(10) {
            0 => "{}".into(),
            1 | 2 => {
                let v = self.metric_value();
                format!(r#"{{"memory_percent":{v},"cpu_percent":{}}}"#, self.metric_value())
            }
            3 | 4 if name == "details" || self.rng.chance(30) => {
                let mut body = Vec::new();
                for key in ["qty", "price", "notional", "fee", "ret_code"] {
                    if self.rng.chance(50) {
                        body.push(format!("\"{key}\":{}", self.metric_value()));
                    }
                }
                if self.rng.chance(50) {
                    let id = match self.rng.below(3) {
                        0 if !self.pools.reservations.is_empty() => json_str(self.rng.pick(&self.pools.reservations)),
                        1 => json_str("not-a-uuid"),
                        _ => self.json_value("reservation_id"),
                    };
                    body.push(format!("\"reservation_id\":{id}"));
                }
                for key in ["exchange_order_id", "message"] {
                    if self.rng.chance(30) {
                        body.push(format!("\"{key}\":{}", self.json_value(key)));
                    }
                }
                format!("{{{}}}", body.join(","))
            }
            5 => format!(r#"{{"job":1,"nested":{}}}"#, self.nested()),
            6 => {
                let v = self.json_value("extra");
                format!(r#"{{"a":{v}}}"#)
            }
            7 => self
                .rng
                .pick(&[
                    r#"{"\u0001":1}"#,
                    r#"{"":""}"#,
                    r#"{"\u0000":1}"#,
                    r#"{"a":1,"a":2}"#,
                    r#"{"memory_percent":"95","memory_percent":96}"#,
                    "[]",
                    "1",
                    r#""s""#,
                    "null",
                    "[{}]",
                ])
                .to_string(),
            8 if self.rng.chance(5) => {
                let body: Vec<String> = (0..10_000).map(|i| format!("\"k{i}\":{i}")).collect();
                format!("{{{}}}", body.join(","))
            }
            _ => format!(r#"{{"job":{},"note":{}}}"#, self.rng.below(1000), self.json_value("note")),
        }
    }

    fn metric_value(&mut self) -> String {
        match self.rng.below(4) {
            0 => json_str(self.rng.pick(&[
                "95", "1e400", "NaN", "inf", "-inf", " 1", "0x10", "1_000", "1e308", "-0", "abc", "", "1e-400",
            ])),
            1 => format!("\"{}\"", "9".repeat(400)),
            _ => self.rng.pick(JSON_NUMBERS).to_string(),
        }
    }

    /// Any document at all: structures and syntax PostgreSQL may or may not
    /// accept as jsonb.
    fn hostile_document(&mut self) -> String {
        match self.rng.below(14) {
            0 => self.rng.pick(&["null", "[]", "{}", "0", r#""str""#, "true", "1e400", "-0"]).to_string(),
            1 | 2 => self.nested(),
            3 => {
                let inner = self.nested();
                format!(
                    r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","x":{inner}}}"#,
                    self.fresh_timestamp()
                )
            }
            4 => {
                let s = self.signal();
                format!("[{s},{s}]")
            }
            5 => self
                .rng
                .pick(&["{", r#"{"a":}"#, "{'a':1}", "NaN", "[1,]", "", "\u{FEFF}{}", "{\"a\":1}x", "01"])
                .to_string(),
            6 => self
                .rng
                .pick(&[
                    r#""\u0000""#,
                    r#"{"symbol":"BTC\u0000USDT","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"symbol":"\\u0000","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"symbol":"\ud800","direction":"BUY","strategy":"s","timestamp":"2025-01-14T10:31:00"}"#,
                    r#"{"\u0000":1}"#,
                ])
                .to_string(),
            7 if self.rng.chance(10) => format!("[{}1]", "1,".repeat(100_000)),
            8 => format!(
                r#"{{"symbol":"BTCUSDT","direction":"BUY","strategy":"s","timestamp":"{}","signal_strength":{}}}"#,
                self.fresh_timestamp(),
                self.rng.pick(&["1e400", "-1e400", "1e-400", "1.7976931348623157e309", "4.9e-325"])
            ),
            9 => {
                let now = self.fresh_timestamp();
                format!(
                    r#"{{"symbol":"BTCUSDT","symbol":"ETHUSDT","direction":"BUY","strategy":"s","timestamp":"{now}"}}"#
                )
            }
            _ => self.object("any"),
        }
    }
}

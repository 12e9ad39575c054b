//! Bar files: a CSV of one-minute bars (plain `.csv` or gzip `.csv.gz`) with
//! the header `timestamp,open,high,low,close,volume`, as shipped in
//! `data/market/` (volume = quote-currency notional), or Binance's kline
//! archive layout `timestamp,open,high,low,close,volume,quote_volume,trades`
//! (volume in the base coin, `quote_volume` in the quote currency), read into
//! `Bar`s oldest first. A bar's volume is always the quote currency's, the
//! unit the feature catalogue defines `vol_z` on: from a Binance file that is
//! `quote_volume`, never the base-coin `volume`.
//!
//! Only parsing happens here. Values are not range-checked: a NaN or a zero
//! price is kept as is, and the consumers that care (the feature windows of
//! `ml::features`) reject them where they know which window is affected.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use flate2::read::MultiGzDecoder;

use super::Bar;

/// The header of a bar file whose `volume` is quote-currency notional.
pub const HEADER: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];
/// The header of a Binance kline archive file: `volume` is in the base coin,
/// `quote_volume` in the quote currency (the bar's volume).
pub const BINANCE_HEADER: [&str; 8] = ["timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades"];

/// Which layout a file has, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `HEADER`: volume in column 5.
    Quote,
    /// `BINANCE_HEADER`: the quote volume in column 6.
    Binance,
}

impl Layout {
    fn fields(self) -> usize {
        match self {
            Layout::Quote => HEADER.len(),
            Layout::Binance => BINANCE_HEADER.len(),
        }
    }

    fn volume_column(self) -> usize {
        match self {
            Layout::Quote => 5,
            Layout::Binance => 6,
        }
    }
}

/// `2021-12-31 23:01:00.000000`, always UTC; the fraction may be absent.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Why a bar file could not be read. Every variant names the file, and the
/// line (1-based, the header is line 1) when the problem is in the content.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: malformed CSV: {source}")]
    Malformed {
        path: PathBuf,
        line: u64,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{path}: line {line}: header is {found:?}, expected \"timestamp,open,high,low,close,volume\" (volume in the \
         quote currency) or Binance's \"timestamp,open,high,low,close,volume,quote_volume,trades\""
    )]
    Header { path: PathBuf, line: u64, found: String },
    #[error("{path}: line {line}: {found} fields, expected {expected} as in the header")]
    FieldCount { path: PathBuf, line: u64, found: usize, expected: usize },
    #[error("{path}: line {line}: {field} {value:?} is not a number")]
    Number { path: PathBuf, line: u64, field: &'static str, value: String },
    #[error("{path}: line {line}: timestamp {value:?} is not a UTC time like \"2021-12-31 23:01:00.000000\"")]
    Timestamp { path: PathBuf, line: u64, value: String },
}

/// Reads every bar of `path`; a name ending in `.gz` is decompressed (the
/// same rule as `ml/features.py`, so both sides read the same rows).
pub fn load_bars(path: &Path) -> Result<Vec<Bar>, CsvError> {
    let file = File::open(path).map_err(|source| CsvError::Io { path: path.to_path_buf(), source })?;
    let gzipped = path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    let reader: Box<dyn Read> =
        if gzipped { Box::new(MultiGzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) };
    read_bars(reader, path)
}

/// Reads bars from any reader; `path` only names the source in errors.
pub fn read_bars(reader: impl Read, path: &Path) -> Result<Vec<Bar>, CsvError> {
    // The header is read as a plain record so that its line number and the
    // rows' line numbers come from the same counter. Fields are trimmed
    // because Python's float() (the reference reader) ignores surrounding
    // blanks; empty lines are skipped by the csv crate, as by Python.
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(reader);
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    let at = |line: u64, source: csv::Error| {
        let line = source.position().map_or(line, |p| p.line());
        if source.is_io_error() {
            // e.g. a truncated or corrupt .gz: a problem of the file, not of a line
            if let csv::ErrorKind::Io(source) = source.into_kind() {
                return CsvError::Io { path: path.to_path_buf(), source };
            }
            unreachable!("is_io_error() means ErrorKind::Io");
        }
        CsvError::Malformed { path: path.to_path_buf(), line, source }
    };

    let has_header = csv.read_record(&mut record).map_err(|e| at(line, e))?;
    if let Some(pos) = record.position() {
        line = pos.line();
    }
    let layout = match () {
        _ if has_header && record.iter().eq(HEADER) => Layout::Quote,
        _ if has_header && record.iter().eq(BINANCE_HEADER) => Layout::Binance,
        _ => {
            let found = record.iter().collect::<Vec<_>>().join(",");
            return Err(CsvError::Header { path: path.to_path_buf(), line, found });
        }
    };

    let mut bars = Vec::new();
    while csv.read_record(&mut record).map_err(|e| at(line + 1, e))? {
        line = record.position().map_or(line + 1, |p| p.line());
        bars.push(parse_bar(&record, layout, path, line)?);
    }
    Ok(bars)
}

fn parse_bar(record: &csv::StringRecord, layout: Layout, path: &Path, line: u64) -> Result<Bar, CsvError> {
    if record.len() != layout.fields() {
        return Err(CsvError::FieldCount {
            path: path.to_path_buf(),
            line,
            found: record.len(),
            expected: layout.fields(),
        });
    }
    let number = |index: usize| {
        let value = &record[index];
        value.parse::<f64>().map_err(|_| CsvError::Number {
            path: path.to_path_buf(),
            line,
            field: BINANCE_HEADER[index],
            value: value.to_string(),
        })
    };
    Ok(Bar {
        ts: parse_timestamp(&record[0]).ok_or_else(|| CsvError::Timestamp {
            path: path.to_path_buf(),
            line,
            value: record[0].to_string(),
        })?,
        open: number(1)?,
        high: number(2)?,
        low: number(3)?,
        close: number(4)?,
        volume: number(layout.volume_column())?,
    })
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).ok().map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::TimeZone;
    use flate2::write::GzEncoder;

    use super::*;

    const GOOD: &str = "timestamp,open,high,low,close,volume\n\
                        2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295\n\
                        2021-12-31 23:02:00.000000,46377.0,46411.0,46377.0,46411.0,1829623.1938\n";

    fn read(text: &str) -> Result<Vec<Bar>, CsvError> {
        read_bars(text.as_bytes(), Path::new("bars.csv"))
    }

    #[test]
    fn reads_rows_as_utc_bars_oldest_first() {
        let bars = read(GOOD).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].ts, Utc.with_ymd_and_hms(2021, 12, 31, 23, 1, 0).unwrap());
        assert_eq!(bars[1].ts, Utc.with_ymd_and_hms(2021, 12, 31, 23, 2, 0).unwrap());
        assert_eq!((bars[0].open, bars[0].high, bars[0].low, bars[0].close), (46319.0, 46385.0, 46319.0, 46377.0));
        assert_eq!(bars[0].volume, 2300413.7295);
    }

    #[test]
    fn numbers_are_the_correctly_rounded_f64_of_the_text() {
        let text =
            "timestamp,open,high,low,close,volume\n2022-01-01 00:00:00.000000,0.1,1e-3,2.5E2,46377.00000000001,7.0\n";
        let bar = read(text).unwrap()[0];
        assert_eq!(bar.open.to_bits(), 0.1f64.to_bits());
        assert_eq!(bar.high, 0.001);
        assert_eq!(bar.low, 250.0);
        assert_eq!(bar.close.to_bits(), 46377.00000000001f64.to_bits());
    }

    #[test]
    fn timestamps_without_fraction_and_blank_lines_are_accepted() {
        let text = "timestamp,open,high,low,close,volume\n\n2022-01-01 00:00:00,1,2,1,2,3\n\n";
        let bars = read(text).unwrap();
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].ts, Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn non_finite_values_are_kept_for_the_features_to_reject() {
        let text = "timestamp,open,high,low,close,volume\n2022-01-01 00:00:00,NaN,inf,0,-1,-5\n";
        let bar = read(text).unwrap()[0];
        assert!(bar.open.is_nan());
        assert_eq!(bar.high, f64::INFINITY);
        assert_eq!((bar.low, bar.close, bar.volume), (0.0, -1.0, -5.0));
    }

    #[test]
    fn wrong_header_names_file_and_line() {
        let err = read("time,open,high,low,close,volume\n").unwrap_err();
        assert!(matches!(err, CsvError::Header { line: 1, .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("bars.csv: line 1: header is \"time,open,high,low,close,volume\""),
            "{err}"
        );
        assert!(matches!(read("").unwrap_err(), CsvError::Header { .. }));
    }

    #[test]
    fn bad_number_names_line_field_and_text() {
        let text = GOOD.to_string() + "2021-12-31 23:03:00.000000,46411.0,46420.0,x46400.0,46405.0,1.0\n";
        let err = read(&text).unwrap_err();
        assert!(
            matches!(&err, CsvError::Number { line: 4, field: "low", value, .. } if value == "x46400.0"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "bars.csv: line 4: low \"x46400.0\" is not a number");
    }

    #[test]
    fn bad_timestamp_names_line_and_text() {
        let text = GOOD.to_string() + "2021-13-31 23:03:00.000000,1,2,1,2,3\n";
        let err = read(&text).unwrap_err();
        assert!(matches!(&err, CsvError::Timestamp { line: 4, value, .. } if value == "2021-13-31 23:03:00.000000"));
    }

    #[test]
    fn a_binance_archive_file_gives_bars_with_the_quote_volume() {
        // Two rows of the shared data's binance-btcusdt-1m-2018.csv.gz.
        let text = "timestamp,open,high,low,close,volume,quote_volume,trades\n\
                    2018-01-01 00:00:00,13715.65,13715.65,13681,13707.92,2.844266,38931.00441306,32\n\
                    2018-01-01 00:01:00,13707.91,13707.91,13666.11,13694.92,2.113138,28910.98250103,29\n";
        let bars = read(text).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].close, bars[0].volume), (13707.92, 38931.00441306), "USDT, not 2.844266 BTC");
        assert_eq!(bars[1].ts, Utc.with_ymd_and_hms(2018, 1, 1, 0, 1, 0).unwrap());
        let short = "timestamp,open,high,low,close,volume,quote_volume,trades\n2018-01-01 00:00:00,1,1,1,1,2\n";
        assert!(matches!(read(short).unwrap_err(), CsvError::FieldCount { found: 6, expected: 8, .. }));
    }

    #[test]
    fn short_row_is_a_field_count_error() {
        let text = GOOD.to_string() + "2021-12-31 23:03:00.000000,1,2,1,2\n";
        assert!(matches!(read(&text).unwrap_err(), CsvError::FieldCount { line: 4, found: 5, .. }));
    }

    #[test]
    fn gzip_file_reads_like_plain_and_missing_file_is_io_error() {
        let dir = std::env::temp_dir().join(format!("botai-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gz = dir.join("bars.csv.gz");
        let mut encoder = GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::default());
        encoder.write_all(GOOD.as_bytes()).unwrap();
        encoder.finish().unwrap();
        assert_eq!(load_bars(&gz).unwrap(), read(GOOD).unwrap());

        let missing = dir.join("missing.csv");
        let err = load_bars(&missing).unwrap_err();
        assert!(matches!(err, CsvError::Io { .. }));
        assert!(err.to_string().contains("missing.csv"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

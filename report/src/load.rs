//! Reading a run folder into a [`Run`]. CSV files are read with polars; per-second and
//! per-priority counts are polars group-bys; the order and loss checks, which need every
//! row in sequence, run over the columns afterwards.
//!
//! Files (any may be absent; the checks that need them then say NOT_EXERCISED):
//! `emitters-*.csv`, `sent-*.csv` (loadgen), `arrivals-<id>.csv` or `summary-<id>.csv` +
//! `latency-<id>.csv` + `seqs-<id>.csv` (sinks), `stats*.csv` (distributor), `events.csv`
//! and `resources.csv` (harness), `profile.toml` (the profile copy).

use crate::model::{
    Analyzer, Distributor, Emitter, Event, LiveSample, Overrides, Resource, Run, Seen, Settings,
};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use polars::prelude::*;
use polars_io::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input the report cannot use. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a folder.
    #[error("{0}: not a run folder")]
    NotADir(PathBuf),
    /// A file polars could not parse.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A column the report needs is missing.
    #[error("{path}: missing column {column:?}")]
    Column {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
    /// A value the report cannot use.
    #[error("{path}:{line}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The folder could not be listed.
    #[error("{path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, InputError>;

/// Reads a whole CSV file with polars.
fn read_csv(path: &Path) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(10_000))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| InputError::Csv {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// An error about column `name` of the file.
fn column_error(path: &Path, name: &str) -> impl Fn(PolarsError) -> InputError {
    let (path, name) = (path.to_owned(), name.to_owned());
    move |e| InputError::Csv {
        path: path.clone(),
        message: format!("column {name}: {e}"),
    }
}

/// Column `name` cast to `dtype` (values that do not convert become null).
fn column(df: &DataFrame, path: &Path, name: &str, dtype: &DataType) -> Result<Column> {
    let c = df.column(name).map_err(|_| InputError::Column {
        path: path.to_owned(),
        column: name.to_owned(),
    })?;
    c.cast(dtype).map_err(column_error(path, name))
}

/// A column as `Option<u64>` per row.
fn col_u64(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<u64>>> {
    let c = column(df, path, name, &DataType::UInt64)?;
    Ok(c.u64().map_err(column_error(path, name))?.iter().collect())
}

/// A column as `Option<f64>` per row.
fn col_f64(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<f64>>> {
    let c = column(df, path, name, &DataType::Float64)?;
    Ok(c.f64().map_err(column_error(path, name))?.iter().collect())
}

/// A column as strings (empty for null).
fn col_str(df: &DataFrame, path: &Path, name: &str) -> Result<Vec<String>> {
    let c = column(df, path, name, &DataType::String)?;
    let ca = c.str().map_err(column_error(path, name))?;
    Ok(ca
        .iter()
        .map(|s| s.unwrap_or_default().to_owned())
        .collect())
}

/// A required value: `None` is an error naming the line.
fn need(v: Option<u64>, path: &Path, row: usize, what: &str) -> Result<u64> {
    v.ok_or_else(|| InputError::Value {
        path: path.to_owned(),
        line: row + 2,
        message: format!("{what} is empty or not a number"),
    })
}

/// Files in `dir` whose names start with `prefix` and end with `suffix`, sorted.
fn files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The id in `<prefix><id>.csv`.
fn id_of(path: &Path, prefix: &str) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.trim_start_matches(prefix)
        .trim_end_matches(".csv")
        .to_owned()
}

/// Whether the file's last byte ends a line (a killed writer may leave a partial line).
fn ends_whole(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.last().is_none_or(|c| *c == b'\n'))
        .unwrap_or(true)
}

#[expect(
    clippy::expect_used,
    reason = "3 significant digits is within hdrhistogram's 0..=5"
)]
fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("valid precision");
    h.auto(true);
    h
}

/// Reads the whole run folder; settings come from the profile copy, then `overrides`.
pub fn run(dir: &Path, overrides: &Overrides) -> Result<Run> {
    if !dir.is_dir() {
        return Err(InputError::NotADir(dir.to_owned()));
    }
    let mut settings = Settings::default();
    profile(dir, &mut settings)?;
    overrides.apply(&mut settings);
    let mut run = Run {
        settings,
        ..Run::default()
    };
    manifest(dir, &mut run)?;
    sent(dir, &mut run)?;
    run.seen = Seen::new(&run.emitters);
    for path in files(dir, "arrivals-", ".csv")? {
        arrivals(&path, &mut run)?;
    }
    for path in files(dir, "summary-", ".csv")? {
        summary(dir, &path, &mut run)?;
    }
    run.analyzers.sort_by(|a, b| a.id.cmp(&b.id));
    for path in files(dir, "stats", ".csv")? {
        stats(&path, &mut run.distributor)?;
    }
    events(dir, &mut run)?;
    resources(dir, &mut run)?;
    Ok(run)
}

/// Settings from `profile.toml`: `[distributor] routing`, `[checks] weight_tolerance,
/// backlog_ms, latency_p99_ms`, and the analyzers' weights.
fn profile(dir: &Path, s: &mut Settings) -> Result<()> {
    let path = dir.join("profile.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let v: toml::Value = toml::from_str(&text).map_err(|e| InputError::Csv {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if let Some(r) = v
        .get("distributor")
        .and_then(|d| d.get("routing"))
        .and_then(|r| r.as_str())
    {
        r.clone_into(&mut s.routing);
    }
    let checks = v.get("checks");
    let num = |k: &str| {
        checks
            .and_then(|c| c.get(k))
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
    };
    if let Some(t) = num("weight_tolerance") {
        s.weight_tolerance = t;
    }
    if let Some(b) = num("backlog_ms") {
        s.backlog_ms = b;
    }
    if let Some(l) = num("latency_p99_ms") {
        s.latency_p99_ms = Some(l);
    }
    for a in v
        .get("analyzers")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let id = a.get("id").and_then(|x| x.as_str());
        let w = a
            .get("weight")
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)));
        if let (Some(id), Some(w)) = (id, w) {
            s.weights.insert(id.to_owned(), w);
        }
    }
    Ok(())
}

fn manifest(dir: &Path, run: &mut Run) -> Result<()> {
    for path in files(dir, "emitters-", ".csv")? {
        let df = read_csv(&path)?;
        let ids = col_u64(&df, &path, "emitter")?;
        let sent = col_u64(&df, &path, "sent")?;
        let unsent = col_u64(&df, &path, "unsent")?;
        let ranges = col_str(&df, &path, "in_doubt_ranges")?;
        for row in 0..df.height() {
            let mut in_doubt = Vec::new();
            for r in ranges[row].split(';').filter(|r| !r.is_empty()) {
                let parsed = r
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
                let range = parsed.ok_or_else(|| InputError::Value {
                    path: path.clone(),
                    line: row + 2,
                    message: format!("in_doubt_ranges entry {r:?} is not START-END"),
                })?;
                in_doubt.push(range);
            }
            run.emitters.push(Emitter {
                id: need(ids[row], &path, row, "emitter")? as u32,
                sent: need(sent[row], &path, row, "sent")?,
                in_doubt,
                unsent: unsent[row].unwrap_or(0),
            });
        }
    }
    run.emitters.sort_by_key(|e| e.id);
    Ok(())
}

/// Messages sent per second and per priority: polars group-bys over `sent-*.csv`.
fn sent(dir: &Path, run: &mut Run) -> Result<()> {
    for path in files(dir, "sent-", ".csv")? {
        let df = read_csv(&path)?;
        let err = |e: PolarsError| InputError::Csv {
            path: path.clone(),
            message: e.to_string(),
        };
        for (key, target) in [("second", 0), ("priority", 1)] {
            let g = df
                .clone()
                .lazy()
                .group_by([col(key)])
                .agg([col("sent").sum().alias("n")])
                .collect()
                .map_err(err)?;
            let keys = col_u64(&g, &path, key)?;
            let n = col_u64(&g, &path, "n")?;
            for (k, n) in keys.into_iter().zip(n) {
                let (Some(k), Some(n)) = (k, n) else { continue };
                if target == 0 {
                    *run.sent_per_second.entry(k).or_default() += n;
                } else {
                    *run.sent_per_priority.entry(k as u8).or_default() += n;
                }
            }
        }
    }
    Ok(())
}

fn analyzer_mut<'a>(run: &'a mut Run, id: &str, mode: &str) -> &'a mut Analyzer {
    if let Some(i) = run.analyzers.iter().position(|a| a.id == id) {
        return &mut run.analyzers[i];
    }
    run.analyzers.push(Analyzer::new(id, mode));
    let last = run.analyzers.len() - 1;
    &mut run.analyzers[last]
}

/// A `full` sink's arrivals: every row, in delivery order.
fn arrivals(path: &Path, run: &mut Run) -> Result<()> {
    let id = id_of(path, "arrivals-");
    let df = read_csv(path)?;
    let partial = !ends_whole(path);
    let arrival = col_u64(&df, path, "arrival_ns")?;
    let emitter = col_u64(&df, path, "emitter")?;
    let seq = col_u64(&df, path, "seq")?;
    let priority = col_u64(&df, path, "priority")?;
    let sent_ns = col_u64(&df, path, "sent_ns")?;
    let queued = col_u64(&df, path, "queued_ns")?;
    let dispatch = col_u64(&df, path, "dispatch_ns")?;
    let crc_ok = col_u64(&df, path, "crc_ok")?;
    let session = col_u64(&df, path, "session")?;
    let mut rows = df.height();
    if partial && rows > 0 && session[rows - 1].is_none() {
        rows -= 1;
        run.notes.push(format!(
            "{}: ignored a partial last line (the sink was killed mid-write)",
            path.display()
        ));
    }
    let per_second = per_second_counts(&df.slice(0, rows), path)?;
    let backlog_ns = (run.settings.backlog_ms * 1e6) as u64;
    let mut a = Analyzer::new(&id, "full");
    a.per_second = per_second;
    let mut order = protocol::order::OrderCheck::default();
    let mut last_session = None;
    let mut seconds: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
    let mut backlog_rows: Vec<usize> = Vec::new();
    for r in 0..rows {
        let arrival_ns = need(arrival[r], path, r, "arrival_ns")?;
        let p = need(priority[r], path, r, "priority")?;
        let p = u8::try_from(p).map_err(|_| InputError::Value {
            path: path.to_owned(),
            line: r + 2,
            message: format!("priority {p} > 255"),
        })?;
        let (q, d) = (
            need(queued[r], path, r, "queued_ns")?,
            need(dispatch[r], path, r, "dispatch_ns")?,
        );
        let s = need(session[r], path, r, "session")?;
        // A new session (or a restarted sink) is a new connection: order restarts.
        if last_session != Some(s) {
            order = protocol::order::OrderCheck::default();
            last_session = Some(s);
        }
        a.received += 1;
        let (inverted, overtaken) = order.observe(p, q, d);
        if inverted {
            a.inversions += 1;
            if a.inversion_examples.len() < 3 {
                a.inversion_examples.push(format!("line {}: priority {p} queued at {q} delivered after a less urgent frame dispatched later", r + 2));
            }
        }
        a.overtaken += u64::from(overtaken);
        let wait = d.saturating_sub(q);
        a.queue_wait_max_us = a.queue_wait_max_us.max(wait / 1000);
        let second = arrival_ns / 1_000_000_000;
        if wait >= backlog_ns && backlog_ns > 0 {
            a.backlog_seconds.insert(second);
        }
        let good = crc_ok[r] == Some(1);
        match (emitter[r], seq[r], good) {
            (Some(e), Some(sq), true) => {
                run.seen.mark(e as u32, sq, 1);
                let lat_us =
                    arrival_ns.saturating_sub(need(sent_ns[r], path, r, "sent_ns")?) / 1000;
                let _ = a.latency.entry(p).or_insert_with(histogram).record(lat_us);
                let _ = seconds
                    .entry(second)
                    .or_insert_with(histogram)
                    .record(lat_us);
                backlog_rows.push(r);
            }
            (Some(_), _, false) => a.corrupt += 1,
            _ => a.non_probe += 1,
        }
    }
    // Latency while a backlog existed, per priority.
    for r in backlog_rows {
        let (Some(t), Some(sn), Some(p)) = (arrival[r], sent_ns[r], priority[r]) else {
            continue;
        };
        if a.backlog_seconds.contains(&(t / 1_000_000_000)) {
            let _ = a
                .latency_backlog
                .entry(p as u8)
                .or_insert_with(histogram)
                .record(t.saturating_sub(sn) / 1000);
        }
    }
    a.latency_per_second = seconds
        .into_iter()
        .map(|(s, h)| {
            (
                s,
                (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()),
            )
        })
        .collect();
    let slot = analyzer_mut(run, &id, "full");
    *slot = a;
    Ok(())
}

/// Arrivals per Unix second: a polars group-by.
fn per_second_counts(df: &DataFrame, path: &Path) -> Result<BTreeMap<u64, u64>> {
    let g = df
        .clone()
        .lazy()
        .select([
            (col("arrival_ns").cast(DataType::UInt64) / lit(1_000_000_000u64)).alias("second"),
        ])
        .group_by([col("second")])
        .agg([len().alias("n")])
        .collect()
        .map_err(|e| InputError::Csv {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let s = col_u64(&g, path, "second")?;
    let n = col_u64(&g, path, "n")?;
    Ok(s.into_iter()
        .zip(n)
        .filter_map(|(s, n)| Some((s?, n?)))
        .collect())
}

/// A `summary` sink: per-second rows, latency histograms and seq ranges.
#[expect(
    clippy::needless_range_loop,
    reason = "each row index reads eleven columns"
)]
fn summary(dir: &Path, path: &Path, run: &mut Run) -> Result<()> {
    let id = id_of(path, "summary-");
    let df = read_csv(path)?;
    let cols: Vec<Vec<Option<u64>>> = [
        "second",
        "priority",
        "count",
        "corrupt",
        "non_probe",
        "inversions",
        "overtaken",
        "lat_p50_us",
        "lat_p99_us",
        "lat_max_us",
        "queue_wait_max_us",
    ]
    .iter()
    .map(|c| col_u64(&df, path, c))
    .collect::<Result<_>>()?;
    let backlog_us = (run.settings.backlog_ms * 1000.0) as u64;
    let mut a = Analyzer::new(&id, "summary");
    let mut per_second_lat: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for r in 0..df.height() {
        let v = |c: usize, what: &str| need(cols[c][r], path, r, what);
        let (second, count) = (v(0, "second")?, v(2, "count")?);
        *a.per_second.entry(second).or_default() += count;
        a.received += count;
        a.corrupt += v(3, "corrupt")?;
        a.non_probe += v(4, "non_probe")?;
        a.inversions += v(5, "inversions")?;
        a.overtaken += v(6, "overtaken")?;
        let wait = v(10, "queue_wait_max_us")?;
        a.queue_wait_max_us = a.queue_wait_max_us.max(wait);
        if wait >= backlog_us && backlog_us > 0 {
            a.backlog_seconds.insert(second);
        }
        let e = per_second_lat.entry(second).or_default();
        // Per-second figures over priorities: the largest of each (an upper bound).
        *e = (
            e.0.max(v(7, "lat_p50_us")?),
            e.1.max(v(8, "lat_p99_us")?),
            e.2.max(v(9, "lat_max_us")?),
        );
    }
    a.latency_per_second = per_second_lat;
    if a.inversions > 0 {
        a.inversion_examples
            .push("counted online by the sink (summary mode keeps no rows)".into());
    }
    let lat = dir.join(format!("latency-{id}.csv"));
    if lat.exists() {
        let ldf = read_csv(&lat)?;
        let labels = col_str(&ldf, &lat, "priority")?;
        let hist = col_str(&ldf, &lat, "histogram")?;
        for (r, (label, hex)) in labels.iter().zip(hist).enumerate() {
            let Ok(p) = label.parse::<u8>() else { continue };
            let h = decode_histogram(&hex).map_err(|message| InputError::Value {
                path: lat.clone(),
                line: r + 2,
                message,
            })?;
            a.latency.insert(p, h);
        }
    }
    let seqs = dir.join(format!("seqs-{id}.csv"));
    if seqs.exists() {
        let sdf = read_csv(&seqs)?;
        let (e, f, l) = (
            col_u64(&sdf, &seqs, "emitter")?,
            col_u64(&sdf, &seqs, "first")?,
            col_u64(&sdf, &seqs, "last")?,
        );
        for r in 0..sdf.height() {
            run.seen.mark_range(
                need(e[r], &seqs, r, "emitter")? as u32,
                need(f[r], &seqs, r, "first")?,
                need(l[r], &seqs, r, "last")?,
            );
        }
    } else {
        run.notes.push(format!(
            "{}: no seqs-{id}.csv (the sink did not exit cleanly): its deliveries count as missing",
            path.display()
        ));
    }
    let slot = analyzer_mut(run, &id, "summary");
    *slot = a;
    Ok(())
}

/// A histogram from the hex of its V2+deflate serialization.
fn decode_histogram(hex: &str) -> std::result::Result<Histogram<u64>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err("histogram hex has odd length".into());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("histogram hex: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("histogram: {e:?}"))?;
    // Deserialized histograms do not grow; merged ones must.
    h.auto(true);
    Ok(h)
}

/// The distributor's stats: the live set per second, queue depth, and the final drops of
/// each incarnation (its last `*` row).
fn stats(path: &Path, d: &mut Distributor) -> Result<()> {
    let df = read_csv(path)?;
    let ts = col_u64(&df, path, "ts_ns")?;
    let analyzer = col_str(&df, path, "analyzer")?;
    let live = col_u64(&df, path, "live")?;
    let weight = col_f64(&df, path, "weight")?;
    let queued = col_u64(&df, path, "queued")?;
    let delivered = col_u64(&df, path, "delivered")?;
    let received = col_u64(&df, path, "received")?;
    let failures = col_u64(&df, path, "failures")?;
    let reasons = [
        "queue_full",
        "holding_full",
        "retries_exhausted",
        "shutdown",
    ];
    let dropped: Vec<Vec<Option<u64>>> = reasons
        .iter()
        .map(|r| col_u64(&df, path, &format!("dropped_{r}")))
        .collect::<Result<_>>()?;
    let mut last_total: Option<usize> = None;
    let mut prev_delivered = 0;
    for r in 0..df.height() {
        let second = need(ts[r], path, r, "ts_ns")? / 1_000_000_000;
        if analyzer[r] == "*" {
            last_total = Some(r);
            let q = need(queued[r], path, r, "queued")?;
            *d.queued.entry(second).or_default() = q;
            let del = need(delivered[r], path, r, "delivered")?;
            *d.delivered_per_second.entry(second).or_default() +=
                del.saturating_sub(prev_delivered);
            prev_delivered = del;
        } else {
            let samples = d.live.entry(second).or_default();
            samples.retain(|s| s.analyzer != analyzer[r]);
            samples.push(LiveSample {
                analyzer: analyzer[r].clone(),
                live: live[r] == Some(1),
                weight: weight[r].unwrap_or(0.0),
            });
        }
    }
    if let Some(r) = last_total {
        for (i, reason) in reasons.iter().enumerate() {
            *d.dropped.entry((*reason).to_owned()).or_default() += dropped[i][r].unwrap_or(0);
        }
        d.failures += failures[r].unwrap_or(0);
        d.received += received[r].unwrap_or(0);
    }
    d.files += 1;
    Ok(())
}

fn events(dir: &Path, run: &mut Run) -> Result<()> {
    let path = dir.join("events.csv");
    if !path.exists() {
        return Ok(());
    }
    let df = read_csv(&path)?;
    if df.height() == 0 {
        return Ok(());
    }
    let ts = col_u64(&df, &path, "ts_ns")?;
    let action = col_str(&df, &path, "action")?;
    let target = col_str(&df, &path, "target")?;
    for r in 0..df.height() {
        run.events.push(Event {
            ts_ns: need(ts[r], &path, r, "ts_ns")?,
            action: action[r].clone(),
            target: target[r].clone(),
        });
    }
    Ok(())
}

fn resources(dir: &Path, run: &mut Run) -> Result<()> {
    let path = dir.join("resources.csv");
    if !path.exists() {
        return Ok(());
    }
    let df = read_csv(&path)?;
    let ts = col_u64(&df, &path, "ts_ns")?;
    let cpu = col_f64(&df, &path, "cpu_pct")?;
    let rss = col_u64(&df, &path, "rss_bytes")?;
    for r in 0..df.height() {
        run.resources.push(Resource {
            ts_ns: need(ts[r], &path, r, "ts_ns")?,
            cpu_pct: cpu[r].unwrap_or(0.0),
            rss_bytes: rss[r].unwrap_or(0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

    #[test]
    fn decoded_histograms_merge_whatever_their_range() {
        let mut small = histogram();
        small.record(10).unwrap();
        let mut big = histogram();
        big.record(50_000_000).unwrap();
        let hex = |h: &Histogram<u64>| {
            let mut raw = Vec::new();
            V2DeflateSerializer::new().serialize(h, &mut raw).unwrap();
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut merged = decode_histogram(&hex(&small)).unwrap();
        merged.add(decode_histogram(&hex(&big)).unwrap()).unwrap();
        assert_eq!(merged.len(), 2);
        assert!(decode_histogram("abc").is_err());
    }
}

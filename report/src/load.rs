//! Reading a run folder into a [`Run`]. Every file is read through its row type in the
//! run folder's schema (`runfolder::rows`), so a missing column or a bad value is an error
//! naming the file, the line and the column. The per-second and per-priority counts are
//! polars group-bys over the typed columns; the order and loss checks, which need every
//! row in sequence, run over the rows as they stream in.
//!
//! Files (any may be absent; the checks that need them then say NOT_EXERCISED):
//! `emitters-*.csv`, `sent-*.csv` (loadgen), `arrivals-<id>.csv` or `summary-<id>.csv` +
//! `latency-<id>.csv` + `seqs-<id>.csv` (sinks), `stats-*.csv` (distributor), `events.csv`,
//! `resources.csv` and `alerts.csv` (harness), `profile.toml` (the profile copy).

use crate::model::{
    Analyzer, Distributor, Emitter, Event, LiveSample, Overrides, Resource, Restricted, Run,
    SecondLatency, Seen, Settings,
};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use polars::prelude::*;
use runfolder::profile::ProfileView;
use runfolder::rows::{self, LatencyClass, Scope};
use runfolder::table::read_all;
use runfolder::{LogMode, TableReader, Traffic, names};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input the report cannot use. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a folder.
    #[error("{}: not a run folder", .0.display())]
    NotADir(PathBuf),
    /// A file that does not fit its schema (the error names the file, line and column).
    #[error(transparent)]
    File(#[from] runfolder::Error),
    /// The profile copy is not a valid profile.
    #[error(transparent)]
    Profile(#[from] runfolder::profile::ProfileViewError),
    /// A value that fits its type but not the run (the error names file and line).
    #[error("{}:{line}: {message}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A polars aggregation failed.
    #[error("{}: {message}", path.display())]
    Aggregate {
        /// The file aggregated.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Files a report needs are not in the folder (a wrong path, or a run that never got
    /// going).
    #[error("{}: not a run folder: no {}", dir.display(), missing.join(", no "))]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// What is missing, for a person.
        missing: Vec<&'static str>,
    },
    /// The loadgen's manifest says nothing was sent: there is nothing to judge.
    #[error("{}: nothing was sent (the loadgen's manifest, or for foreign traffic the distributor's stats, count 0 messages): nothing to judge", dir.display())]
    NothingSent {
        /// The folder.
        dir: PathBuf,
    },
    /// The folder could not be listed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, InputError>;

/// Every file of `family` in `dir`, as (key, path).
fn files(dir: &Path, family: names::Family) -> Result<Vec<(String, PathBuf)>> {
    family.list(dir).map_err(|error| InputError::Io {
        path: dir.to_owned(),
        error,
    })
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

/// Sums of `value` grouped by `key`: a polars group-by over two typed columns.
fn group_sum(path: &Path, key: Vec<u64>, value: Vec<u64>) -> Result<BTreeMap<u64, u64>> {
    let aggregate = |e: PolarsError| InputError::Aggregate {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let df = DataFrame::new_infer_height(vec![
        Column::new("key".into(), key),
        Column::new("value".into(), value),
    ])
    .map_err(aggregate)?;
    let g = df
        .lazy()
        .group_by([col("key")])
        .agg([col("value").sum().alias("sum")])
        .collect()
        .map_err(aggregate)?;
    let keys = g
        .column("key")
        .and_then(|c| c.u64().cloned())
        .map_err(aggregate)?;
    let sums = g
        .column("sum")
        .and_then(|c| c.u64().cloned())
        .map_err(aggregate)?;
    Ok(keys
        .iter()
        .zip(sums.iter())
        .filter_map(|(k, n)| Some((k?, n?)))
        .collect())
}

/// Reads the whole run folder; settings come from the profile copy, then `overrides`.
pub fn run(dir: &Path, overrides: &Overrides) -> Result<Run> {
    if !dir.is_dir() {
        return Err(InputError::NotADir(dir.to_owned()));
    }
    let mut settings = Settings {
        traffic: sink_traffic(dir)?,
        ..Settings::default()
    };
    let profile = profile(dir, &mut settings)?;
    overrides.apply(&mut settings);
    require_run_files(dir, settings.traffic)?;
    let manifest_path = dir.join(names::MANIFEST);
    let harness_manifest = if manifest_path.exists() {
        Some(runfolder::table::read_json(&manifest_path)?)
    } else {
        None
    };
    let mut run = Run {
        settings,
        profile,
        manifest: harness_manifest,
        files: listing(dir)?,
        ..Run::default()
    };
    loadgen_manifest(dir, &mut run)?;
    if run.settings.traffic == Traffic::Probes && run.emitters.iter().all(|e| e.sent == 0) {
        return Err(InputError::NothingSent {
            dir: dir.to_owned(),
        });
    }
    sent(dir, &mut run)?;
    run.seen = Seen::new(&run.emitters);
    for (id, path) in files(dir, names::ARRIVALS)? {
        arrivals(&id, &path, &mut run)?;
    }
    for (id, path) in files(dir, names::SUMMARY)? {
        summary(dir, &id, &path, &mut run)?;
    }
    run.analyzers.sort_by(|a, b| a.id.cmp(&b.id));
    for (_, path) in files(dir, names::STATS)? {
        stats(&path, &mut run.distributor)?;
    }
    if run.settings.traffic == Traffic::Foreign && run.distributor.received == 0 {
        return Err(InputError::NothingSent {
            dir: dir.to_owned(),
        });
    }
    events(dir, &mut run)?;
    resources(dir, &mut run)?;
    let alerts = dir.join(names::ALERTS);
    if alerts.exists() {
        run.alerts = Some(read_all::<rows::Alert>(&alerts)?);
    }
    let probes = dir.join(names::SECURITY);
    if probes.exists() {
        run.probes = Some(read_all::<rows::Probe>(&probes)?);
    }
    run.restricted_sent = restricted(dir, &run)?;
    Ok(run)
}

/// What the profile's restricted emitters (ids from [`names::RESTRICTED_ID_BASE`]) sent
/// inside and outside their allowed priorities.
fn restricted(dir: &Path, run: &Run) -> Result<Option<Restricted>> {
    let Some(r) = run
        .profile
        .as_ref()
        .and_then(|p| p.security.as_ref())
        .and_then(|s| s.restricted.as_ref())
    else {
        return Ok(None);
    };
    let path = dir.join(names::PROFILE);
    let range = runfolder::profile::parse_priorities(&r.priorities).map_err(|message| {
        InputError::Profile(runfolder::profile::ProfileViewError::Parse {
            path: path.clone(),
            message: format!("invalid security.restricted.priorities: {message}"),
        })
    })?;
    let mut out = Restricted::default();
    for (_, path) in files(dir, names::SENT)? {
        for row in read_all::<rows::Sent>(&path)? {
            if row.emitter < names::RESTRICTED_ID_BASE {
                continue;
            }
            if range.contains(&row.priority) {
                out.allowed += row.sent;
            } else {
                out.forbidden += row.sent;
            }
        }
    }
    Ok(Some(out))
}

/// What the sinks were told to expect: foreign when any sink's totals say so.
fn sink_traffic(dir: &Path) -> Result<Traffic> {
    for (_, path) in files(dir, names::TOTALS)? {
        if read_all::<rows::SinkTotals>(&path)?
            .iter()
            .any(|t| t.traffic == Traffic::Foreign)
        {
            return Ok(Traffic::Foreign);
        }
    }
    Ok(Traffic::Probes)
}

/// Refuses a folder without the files a report needs: a report on it would judge nothing
/// (a wrong path in CI must not pass). Probes need the loadgen's files; foreign traffic
/// needs the distributor's stats (its counters are the accounting); both need a sink's.
fn require_run_files(dir: &Path, traffic: Traffic) -> Result<()> {
    let mut missing = Vec::new();
    match traffic {
        Traffic::Probes => {
            if files(dir, names::EMITTERS)?.is_empty() {
                missing.push("loadgen manifest (emitters-*.csv)");
            }
            if files(dir, names::SENT)?.is_empty() {
                missing.push("loadgen counts (sent-*.csv)");
            }
        }
        Traffic::Foreign => {
            if files(dir, names::STATS)?.is_empty() {
                missing.push("distributor stats (stats-*.csv) for foreign traffic");
            }
        }
    }
    if files(dir, names::ARRIVALS)?.is_empty() && files(dir, names::SUMMARY)?.is_empty() {
        missing.push("analyzer sink files (arrivals-<id>.csv or summary-<id>.csv)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InputError::Missing {
            dir: dir.to_owned(),
            missing,
        })
    }
}

/// Settings from `profile.toml`: routing, pinned and HELLO weights, check thresholds.
fn profile(dir: &Path, s: &mut Settings) -> Result<Option<ProfileView>> {
    let path = dir.join(names::PROFILE);
    if !path.exists() {
        return Ok(None);
    }
    let view = ProfileView::load(&path)?;
    s.routing = view.distributor.routing;
    s.weight_tolerance = view.checks.weight_tolerance;
    s.backlog_ms = view.checks.backlog_ms;
    s.latency_p99_ms = view.checks.latency_p99_ms;
    s.latency_class = view.checks.latency_class.clone();
    s.weights = view.weights();
    Ok(Some(view))
}

/// The folder's data and log files (what the report links to), sorted.
fn listing(dir: &Path) -> Result<Vec<String>> {
    let io = |error| InputError::Io {
        path: dir.to_owned(),
        error,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let Some(name) = name.to_str() else { continue };
        let kept = [".csv", ".log", ".json", ".toml"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if kept {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn loadgen_manifest(dir: &Path, run: &mut Run) -> Result<()> {
    for (_, path) in files(dir, names::EMITTERS)? {
        for row in read_all::<rows::EmitterTotals>(&path)? {
            run.emitters.push(Emitter {
                id: row.emitter,
                sent: row.sent,
                in_doubt: row.in_doubt_ranges.0,
                secured: row.secured,
                unsent: row.unsent,
            });
        }
    }
    run.emitters.sort_by_key(|e| e.id);
    Ok(())
}

/// Messages sent per second and per priority: polars group-bys over `sent-*.csv`.
fn sent(dir: &Path, run: &mut Run) -> Result<()> {
    for (_, path) in files(dir, names::SENT)? {
        let rows = read_all::<rows::Sent>(&path)?;
        let n: Vec<u64> = rows.iter().map(|r| r.sent).collect();
        let seconds = rows.iter().map(|r| r.second).collect();
        let priorities = rows.iter().map(|r| u64::from(r.priority)).collect();
        for (second, n) in group_sum(&path, seconds, n.clone())? {
            *run.sent_per_second.entry(second).or_default() += n;
        }
        for (p, n) in group_sum(&path, priorities, n)? {
            *run.sent_per_priority.entry(p as u8).or_default() += n;
        }
    }
    Ok(())
}

fn analyzer_mut<'a>(run: &'a mut Run, id: &str, mode: LogMode) -> &'a mut Analyzer {
    if let Some(i) = run.analyzers.iter().position(|a| a.id == id) {
        return &mut run.analyzers[i];
    }
    run.analyzers.push(Analyzer::new(id, mode));
    let last = run.analyzers.len() - 1;
    &mut run.analyzers[last]
}

/// A `full` sink's arrivals: every row, in delivery order.
fn arrivals(id: &str, path: &Path, run: &mut Run) -> Result<()> {
    let reader = TableReader::<rows::Arrival>::open(path)?;
    if reader.partial_tail > 0 {
        run.notes.push(format!(
            "{}: ignored a partial last line (the sink was killed mid-write)",
            path.display()
        ));
    }
    let backlog_ns = (run.settings.backlog_ms * 1e6) as u64;
    let mut a = Analyzer::new(id, LogMode::Full);
    let mut order = protocol::order::OrderCheck::default();
    let mut last_session = None;
    let mut seconds: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
    // Verified probes: (arrival second, priority, latency µs), for latency under backlog.
    let mut probes: Vec<(u64, u8, u64)> = Vec::new();
    let mut arrival_seconds: Vec<u64> = Vec::new();
    for (r, row) in reader.enumerate() {
        let row = row?;
        // A new session (or a restarted sink) is a new connection: order restarts.
        if last_session != Some(row.session) {
            order = protocol::order::OrderCheck::default();
            last_session = Some(row.session);
        }
        a.received += 1;
        let (p, q, d) = (row.priority, row.queued_ns, row.dispatch_ns);
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
        let second = row.arrival_ns / 1_000_000_000;
        arrival_seconds.push(second);
        if wait >= backlog_ns && backlog_ns > 0 {
            a.backlog_seconds.insert(second);
        }
        match (row.emitter, row.seq, row.crc_ok) {
            (Some(e), Some(sq), true) => {
                run.seen.mark(e, sq, 1);
                let lat_us = row.arrival_ns.saturating_sub(row.sent_ns) / 1000;
                let _ = a.latency.entry(p).or_insert_with(histogram).record(lat_us);
                let _ = seconds
                    .entry(second)
                    .or_insert_with(histogram)
                    .record(lat_us);
                probes.push((second, p, lat_us));
            }
            (Some(_), _, false) => a.corrupt += 1,
            _ => a.non_probe += 1,
        }
    }
    // Latency while a backlog existed, per priority.
    for (second, p, lat_us) in probes {
        if a.backlog_seconds.contains(&second) {
            let _ = a
                .latency_backlog
                .entry(p)
                .or_insert_with(histogram)
                .record(lat_us);
        }
    }
    let ones = vec![1; arrival_seconds.len()];
    a.per_second = group_sum(path, arrival_seconds, ones)?;
    a.latency_per_second = seconds
        .into_iter()
        .map(|(s, h)| {
            (
                s,
                SecondLatency {
                    p50: h.value_at_quantile(0.5),
                    p99: h.value_at_quantile(0.99),
                    p999: Some(h.value_at_quantile(0.999)),
                    max: h.max(),
                },
            )
        })
        .collect();
    let slot = analyzer_mut(run, id, LogMode::Full);
    *slot = a;
    Ok(())
}

/// A `summary` sink: per-second rows, latency histograms and seq ranges.
fn summary(dir: &Path, id: &str, path: &Path, run: &mut Run) -> Result<()> {
    let backlog_us = (run.settings.backlog_ms * 1000.0) as u64;
    let mut a = Analyzer::new(id, LogMode::Summary);
    let mut per_second_lat: BTreeMap<u64, SecondLatency> = BTreeMap::new();
    for row in read_all::<rows::SummarySecond>(path)? {
        *a.per_second.entry(row.second).or_default() += row.count;
        a.received += row.count;
        a.corrupt += row.corrupt;
        a.non_probe += row.non_probe;
        a.inversions += row.inversions;
        a.overtaken += row.overtaken;
        a.queue_wait_max_us = a.queue_wait_max_us.max(row.queue_wait_max_us);
        if row.queue_wait_max_us >= backlog_us && backlog_us > 0 {
            a.backlog_seconds.insert(row.second);
        }
        if let (Some(p50), Some(p99), Some(max)) = (row.lat_p50_us, row.lat_p99_us, row.lat_max_us)
        {
            let e = per_second_lat.entry(row.second).or_default();
            // Per-second figures over priorities: the largest of each (an upper bound).
            *e = e.max_with(SecondLatency {
                p50,
                p99,
                p999: row.lat_p999_us,
                max,
            });
        }
    }
    a.latency_per_second = per_second_lat;
    if a.inversions > 0 {
        a.inversion_examples
            .push("counted online by the sink (summary mode keeps no rows)".into());
    }
    let lat = names::LATENCY.path(dir, id);
    if lat.exists() {
        for (r, row) in read_all::<rows::Latency>(&lat)?.into_iter().enumerate() {
            let LatencyClass::Priority(p) = row.priority else {
                continue;
            };
            let h = decode_histogram(&row.histogram).map_err(|message| InputError::Value {
                path: lat.clone(),
                line: r + 2,
                message,
            })?;
            a.latency.insert(p, h);
        }
    }
    let seqs = names::SEQS.path(dir, id);
    if seqs.exists() {
        for row in read_all::<rows::SeqRange>(&seqs)? {
            run.seen.mark_range(row.emitter, row.first, row.last);
        }
    } else {
        run.notes.push(format!(
            "{}: no {} (the sink did not exit cleanly): its deliveries count as missing",
            path.display(),
            names::SEQS.name(id)
        ));
    }
    let slot = analyzer_mut(run, id, LogMode::Summary);
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
    let mut last_total: Option<rows::Stats> = None;
    let mut prev_delivered = 0;
    // Per analyzer, its last (spilled_out, spilled_in): the counters are cumulative.
    let mut prev_spilled: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in read_all::<rows::Stats>(path)? {
        let second = row.ts_ns / 1_000_000_000;
        match &row.analyzer {
            Scope::Total => {
                *d.queued.entry(second).or_default() = row.queued;
                *d.delivered_per_second.entry(second).or_default() +=
                    row.delivered.saturating_sub(prev_delivered);
                prev_delivered = row.delivered;
                last_total = Some(row);
            }
            Scope::Analyzer(id) => {
                let (out, inn) = prev_spilled.entry(id.clone()).or_default();
                let (d_out, d_in) = (
                    row.spilled_out.saturating_sub(*out),
                    row.spilled_in.saturating_sub(*inn),
                );
                (*out, *inn) = (row.spilled_out, row.spilled_in);
                if d_out + d_in > 0 {
                    *d.spilled_net
                        .entry(second)
                        .or_default()
                        .entry(id.clone())
                        .or_default() += d_out as i64 - d_in as i64;
                    d.spilled += d_out;
                }
                let samples = d.live.entry(second).or_default();
                samples.retain(|s| &s.analyzer != id);
                samples.push(LiveSample {
                    analyzer: id.clone(),
                    live: row.live == 1,
                    weight: row.weight,
                });
            }
        }
    }
    if let Some(t) = last_total {
        for (reason, n) in [
            ("queue_full", t.dropped_queue_full),
            ("holding_full", t.dropped_holding_full),
            ("retries_exhausted", t.dropped_retries_exhausted),
            ("shutdown", t.dropped_shutdown),
            ("bytes_full", t.dropped_bytes_full),
            ("forbidden", t.dropped_forbidden),
            ("journal_full", t.dropped_journal_full),
            ("journal_corrupt", t.dropped_journal_corrupt),
        ] {
            *d.dropped.entry(reason.to_owned()).or_default() += n;
        }
        d.failures += t.failures;
        d.received += t.received;
        d.delivered += t.delivered;
        d.recovered += t.recovered;
    }
    d.files += 1;
    Ok(())
}

fn events(dir: &Path, run: &mut Run) -> Result<()> {
    let path = dir.join(names::EVENTS);
    if !path.exists() {
        return Ok(());
    }
    for row in read_all::<rows::Event>(&path)? {
        run.events.push(Event {
            ts_ns: row.ts_ns,
            action: row.action,
            target: row.target,
        });
    }
    Ok(())
}

fn resources(dir: &Path, run: &mut Run) -> Result<()> {
    let path = dir.join(names::RESOURCES);
    if !path.exists() {
        return Ok(());
    }
    for row in read_all::<rows::Resource>(&path)? {
        run.resources.push(Resource {
            ts_ns: row.ts_ns,
            cpu_pct: row.cpu_pct,
            rss_bytes: row.rss_bytes,
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

    #[test]
    fn journal_drops_and_recovered_frames_are_summed_over_incarnations() {
        let dir = std::env::temp_dir().join(format!("report-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Distributor::default();
        for (n, (full, recovered)) in [(3, 0), (4, 25)].into_iter().enumerate() {
            let path = names::STATS.path(&dir, n as u32 + 1);
            let mut w = runfolder::TableWriter::<rows::Stats>::create(&path).unwrap();
            w.write(&rows::Stats {
                received: 100,
                dropped_journal_full: full,
                dropped_journal_corrupt: 1,
                recovered,
                ..rows::Stats::zeroed(1_000_000_000, rows::Scope::Total)
            })
            .unwrap();
            w.flush().unwrap();
            stats(&path, &mut d).unwrap();
        }
        assert_eq!(d.dropped["journal_full"], 7);
        assert_eq!(d.dropped["journal_corrupt"], 2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((d.recovered, d.received, d.dropped_total()), (25, 200, 9));
    }
}

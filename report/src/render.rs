//! Outputs as values: `summary.csv` and `summary.json` bytes, the self-contained HTML page
//! and the verdict lines. Nothing here touches files.

use crate::charts::Chart;
use crate::checks::{Outcome, Row, Status, Unit, overall, result_line};
use crate::model::Run;
use std::fmt::Write as _;

/// `summary.csv`: one row per check and figure (`runfolder::rows::CheckRow`).
pub fn summary_csv(outcomes: &[Outcome]) -> Result<Vec<u8>, csv::Error> {
    let rows: Vec<Row> = outcomes.iter().flat_map(|o| o.rows.clone()).collect();
    runfolder::table::encode(&rows)
}

pub(crate) fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One verdict line per check (value against limit with its unit), as printed.
pub fn verdicts(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<13} {:<10} {}",
            o.status.as_str(),
            o.name(),
            o.headline
        );
    }
    out
}

/// `summary.json`: one object per check and figure, with numbers (null where none).
pub fn summary_json(outcomes: &[Outcome]) -> Result<Vec<u8>, serde_json::Error> {
    let checks: Vec<runfolder::json::Check> = outcomes
        .iter()
        .flat_map(|o| &o.rows)
        .map(|r| runfolder::json::Check {
            check: r.check.clone(),
            status: r.status,
            value: r.value_num,
            limit: r.limit_num,
            unit: r.unit,
            detail: r.detail.clone(),
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(&checks)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Inconclusive => "inconclusive",
        Status::NotExercised => "notex",
        Status::Info => "info",
    }
}

/// A number for a table cell: up to four decimals, no trailing zeros.
fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => {
            let s = format!("{v:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        None => String::new(),
    }
}

pub(crate) const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222;line-height:1.4}\
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.6em 0;width:100%}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
table.meta th{width:11em}\
.pass{background:#d8f5d8}.fail{background:#f8d0d0}.inconclusive{background:#fbeec0}.notex{background:#e6e6e6}.info{background:#dde8f6}\
.banner{font-size:1.4em;font-weight:bold;padding:.6em 1em;border-radius:6px;margin:1em 0}\
figure{margin:1em 0}figure svg{width:100%;height:auto;border:1px solid #ddd}\
figcaption{font-size:13px;color:#555}pre{white-space:pre-wrap;word-break:break-all;font-size:12px}\
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;font-size:14px}\
dl.legend dt{padding:0 .5em;border-radius:3px}\
ul.files{columns:3 16em;font-size:14px}\
@media (max-width:760px){body{margin:.5em auto}td,th{font-size:13px;padding:3px 4px}ul.files{columns:1}}";

/// The report page: a header from the manifest and profile, the verdict, the checks,
/// charts inline as SVG, every figure, links to every file of the run. One file, readable
/// offline.
pub fn html_page(title: &str, run: &Run, outcomes: &[Outcome], charts: &[Chart]) -> String {
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title>\n<style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = html(title)
    );
    let verdict = overall(outcomes);
    let result = result_line(outcomes);
    let _ = writeln!(
        out,
        "<div class=\"banner {}\" id=\"verdict\">{}</div>",
        status_class(verdict),
        html(result.trim_start_matches("RESULT: "))
    );
    header(&mut out, run);
    out.push_str("<h2>Checks</h2>\n<table class=\"checks\"><tr><th>check</th><th>status</th><th>value</th><th>limit</th><th>unit</th><th>verdict</th></tr>\n");
    for o in outcomes {
        let (value, limit, unit) = o.rows.first().map_or((None, None, Unit::None), |r| {
            (r.value_num, r.limit_num, r.unit)
        });
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            status_class(o.status),
            html(o.name()),
            o.status,
            num(value),
            num(limit),
            html(unit.as_str()),
            html(&o.headline)
        );
    }
    out.push_str("</table>\n");
    out.push_str(LEGEND);
    out.push_str("<h2>Charts</h2>\n");
    for c in charts {
        let _ = writeln!(
            out,
            "<figure>{}<figcaption><a href=\"charts/{name}.png\">charts/{name}.png</a></figcaption></figure>",
            c.svg,
            name = c.name
        );
    }
    latency_table(&mut out, run);
    out.push_str("<h2>Figures</h2>\n");
    for o in outcomes {
        let _ = write!(
            out,
            "<details><summary>{} ({} rows)</summary>\n<table><tr><th>row</th><th>status</th><th>value</th><th>expected</th><th>detail</th></tr>\n",
            html(o.name()),
            o.rows.len()
        );
        for r in &o.rows {
            row(&mut out, r);
        }
        out.push_str("</table></details>\n");
    }
    if !run.notes.is_empty() {
        out.push_str("<h2>Notes on the input</h2>\n<ul>\n");
        for n in &run.notes {
            let _ = writeln!(out, "<li>{}</li>", html(n));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Files</h2>\n<ul class=\"files\">\n");
    for f in &run.files {
        let _ = writeln!(out, "<li><a href=\"{0}\">{0}</a></li>", html(f));
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

const LEGEND: &str = "<dl class=\"legend\">\
<dt class=\"pass\">PASS</dt><dd>the property held, and the run exercised it</dd>\
<dt class=\"fail\">FAIL</dt><dd>the property was violated (exit code 1)</dd>\
<dt class=\"inconclusive\">INCONCLUSIVE</dt><dd>too little data to decide either way; the verdict says how much would (exit code 3)</dd>\
<dt class=\"notex\">NOT_EXERCISED</dt><dd>the run gave the check nothing to look at, and the verdict says why; never counted as a pass</dd>\
<dt class=\"info\">INFO</dt><dd>a figure with nothing to compare it with (the profile sets no limit); shown, never judged, never counted as a pass</dd>\
</dl>\n";

/// The run's facts: profile, load, analyzers, time, host, build, chaos, command lines.
fn header(out: &mut String, run: &Run) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let m = run.manifest.as_ref();
    let p = run.profile.as_ref();
    if let Some(m) = m {
        rows.push(("profile", m.profile.clone()));
    }
    if let Some(p) = p {
        rows.push(("description", p.description.clone()));
        rows.push(("load", p.emitters.describe()));
        let analyzers: Vec<String> = p
            .analyzers
            .iter()
            .map(|a| {
                let mode = if a.acks {
                    "at least once"
                } else {
                    "best effort"
                };
                format!("{} (weight {}, {mode}, {} log)", a.id, a.weight, a.log)
            })
            .collect();
        rows.push(("analyzers", analyzers.join("; ")));
        rows.push(("routing", run.settings.routing.to_string()));
    }
    if let Some(m) = m {
        rows.push((
            "duration",
            format!("{} s (scale {:.2} of the profile's)", m.duration_s, m.scale),
        ));
        rows.push((
            "start, end (UTC)",
            format!("{}, {}", m.start_utc, m.end_utc),
        ));
        rows.push(("host", format!("{}, {} cores", m.host, m.cores)));
        let commit = if m.git_commit.is_empty() {
            "(not a git checkout)".to_owned()
        } else {
            m.git_commit.clone()
        };
        rows.push(("version", format!("{}, commit {commit}", m.version)));
        let recovered = match run.distributor.recovered {
            0 => String::new(),
            n => format!("; {n} frames recovered from its journal after restarts"),
        };
        rows.push((
            "distributor",
            format!("{} incarnation(s){recovered}", m.distributor_incarnations),
        ));
    }
    if let Some(p) = p {
        let chaos = if p.chaos.is_empty() {
            "none".to_owned()
        } else {
            let scale = m.map_or(1.0, |m| m.scale);
            p.chaos
                .iter()
                .map(|c| format!("{:.0} s {} {}", c.at * scale, c.action, c.targets.join(" ")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        rows.push(("chaos", chaos));
    }
    if let Some(alerts) = &run.alerts {
        let names: Vec<String> = alerts
            .iter()
            .map(|a| match a.label("analyzer").or(a.label("reason")) {
                Some(who) => format!("{} {who} at {:.0} s", a.alert, a.fired_at_s),
                None => format!("{} at {:.0} s", a.alert, a.fired_at_s),
            })
            .collect();
        let fired = if names.is_empty() {
            "none fired".to_owned()
        } else {
            format!("{} fired: {}", names.len(), names.join("; "))
        };
        rows.push((
            "monitoring",
            format!("a real Prometheus scraped the distributor with the alert rules (alerts.csv); {fired}"),
        ));
    }
    if let Some(p) = run.profile.as_ref().filter(|p| p.tls) {
        let mut what = vec![
            "every connection over mutual TLS (emitters, analyzers, /metrics), certificates minted by the harness into tls/; analyzer ids bound to certificate identities".to_owned(),
        ];
        if let Some(sec) = &p.security {
            if let Some(i) = &sec.impostor {
                what.push(format!(
                    "an impostor claims {:?} at {:.0} s",
                    i.claims,
                    i.at * run.manifest.as_ref().map_or(1.0, |m| m.scale)
                ));
            }
            if let Some(r) = &sec.restricted {
                what.push(format!(
                    "{} limited to priorities {} by the access file ({})",
                    r.identity,
                    r.priorities,
                    r.emitters.describe()
                ));
            }
        }
        rows.push(("security", what.join("; ")));
    }
    if rows.is_empty() {
        out.push_str("<p>No manifest or profile in the folder: the components were not run by the harness.</p>\n");
        return;
    }
    out.push_str("<table class=\"meta\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", html(k), html(&v));
    }
    out.push_str("</table>\n");
    if let Some(m) = m {
        let _ = writeln!(
            out,
            "<details><summary>Command lines ({})</summary><pre>{}</pre></details>",
            m.command_lines.len(),
            html(&m.command_lines.join("\n"))
        );
    }
}

/// Latency by priority as a table when one level makes a chart pointless.
fn latency_table(out: &mut String, run: &Run) {
    let levels = crate::charts::latency_levels(run);
    if levels.len() != 1 {
        return;
    }
    out.push_str("<h3>End-to-end latency (one priority level)</h3>\n<table><tr><th>priority</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>\n");
    for (p, p50, p99, max) in levels {
        let _ = writeln!(
            out,
            "<tr><td>{p}</td><td class=\"n\">{p50:.3}</td><td class=\"n\">{p99:.3}</td><td class=\"n\">{max:.3}</td></tr>"
        );
    }
    out.push_str("</table>\n");
}

fn row(out: &mut String, r: &Row) {
    let _ = writeln!(
        out,
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        status_class(r.status),
        html(&r.check),
        r.status.as_str(),
        html(&r.value),
        html(&r.expected),
        html(&r.detail)
    );
}

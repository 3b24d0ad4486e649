//! Outputs as values: `summary.csv` text, the self-contained HTML page and the verdict
//! lines. Nothing here touches files.

use crate::charts::Chart;
use crate::checks::{Outcome, Row, Status};
use base64::Engine as _;
use runfolder::rows::CheckRow;
use std::fmt::Write as _;

/// `summary.csv`: `check,status,value,expected,detail`, one row per check and figure.
pub fn summary_csv(outcomes: &[Outcome]) -> Result<Vec<u8>, csv::Error> {
    let rows: Vec<CheckRow> = outcomes
        .iter()
        .flat_map(|o| &o.rows)
        .map(|r| CheckRow {
            check: r.check.clone(),
            status: r.status,
            value: r.value.clone(),
            expected: r.expected.clone(),
            detail: r.detail.clone(),
        })
        .collect();
    runfolder::table::encode(&rows)
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One verdict line per check, as printed.
pub fn verdicts(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        if let Some(r) = o.rows.first() {
            let _ = writeln!(
                out,
                "{:<13} {:<10} {}",
                r.status.as_str(),
                r.check,
                r.detail
            );
        }
    }
    out
}

fn status_class(r: &Row) -> &'static str {
    match r.status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Inconclusive => "inconclusive",
        Status::NotExercised => "notex",
    }
}

/// The report page: checks, figures and charts (PNG embedded as data URIs), one file,
/// readable offline.
pub fn html_page(title: &str, outcomes: &[Outcome], charts: &[Chart], notes: &[String]) -> String {
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
body{{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}}\
table{{border-collapse:collapse;margin:1em 0;width:100%}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px;vertical-align:top}}\
.pass{{background:#d8f5d8}}.fail{{background:#f8d0d0}}.inconclusive{{background:#fbeec0}}.notex{{background:#e6e6e6}}\
img{{max-width:100%;border:1px solid #ddd;margin:0.5em 0}}details{{margin:0.5em 0}}\
</style></head><body>\n<h1>{t}</h1>\n<h2>Checks</h2>\n<table><tr><th>check</th><th>status</th><th>value</th><th>expected</th><th>detail</th></tr>\n",
        t = html(title)
    );
    for o in outcomes {
        if let Some(r) = o.rows.first() {
            row(&mut out, r);
        }
    }
    out.push_str("</table>\n");
    for c in charts {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&c.png);
        let _ = writeln!(
            out,
            "<h3>{}</h3>\n<img alt=\"{}\" src=\"data:image/png;base64,{b64}\">",
            html(&c.title),
            html(&c.title)
        );
    }
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
    if !notes.is_empty() {
        out.push_str("<h2>Notes on the input</h2>\n<ul>\n");
        for n in notes {
            let _ = writeln!(out, "<li>{}</li>", html(n));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

fn row(out: &mut String, r: &Row) {
    let _ = writeln!(
        out,
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        status_class(r),
        html(&r.check),
        r.status.as_str(),
        html(&r.value),
        html(&r.expected),
        html(&r.detail)
    );
}

//! What `report compare` shows: the terminal table and the self-contained `compare.html`
//! (the verdicts, each metric's Δ with its interval drawn against the tolerance band, and
//! for run folders the throughput and p99 of every run over time, base beside candidate).

use super::input::{Loaded, Side, Timeline};
use crate::charts::{ChartError, FONT, compact, err, fonts, integer};
use crate::render::{STYLE, html as esc};
use plotters::prelude::*;
use runfolder::json::Compare;
use runfolder::rows::CompareRow;
use runfolder::{Method, Verdict};
use std::fmt::Write as _;

/// A mean in its unit, with as many decimals as it needs.
fn value(v: f64) -> String {
    match v.abs() {
        0.0 => "0".to_owned(),
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 0.1 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.1}%"))
}

fn interval(r: &CompareRow) -> String {
    match (r.ci_low_pct, r.ci_high_pct) {
        (Some(a), Some(b)) => format!("[{a:+.1}%, {b:+.1}%]"),
        _ => match r.method {
            Method::Single => "(one sample)".to_owned(),
            _ => "-".to_owned(),
        },
    }
}

/// The last line printed: `RESULT: REGRESSION (...)` or `RESULT: NO REGRESSION (...)`.
pub fn result_line(c: &Compare) -> String {
    let count = |v: Verdict| c.rows.iter().filter(|r| r.verdict == v).count();
    let parts = format!(
        "{} regressions, {} improvements, {} erratic, {} no change",
        count(Verdict::Regression),
        count(Verdict::Improvement),
        count(Verdict::Erratic),
        count(Verdict::NoChange)
    );
    if c.regressions > 0 {
        format!("RESULT: REGRESSION ({parts})")
    } else {
        format!("RESULT: NO REGRESSION ({parts})")
    }
}

/// The table printed on the terminal: one line per scenario and metric.
pub fn table(c: &Compare) -> String {
    let head = [
        "scenario",
        "metric",
        "unit",
        "base",
        "candidate",
        "Δ mean",
        "interval",
        "verdict",
    ];
    let mut lines: Vec<[String; 8]> = vec![head.map(String::from)];
    for r in &c.rows {
        lines.push([
            r.scenario.clone(),
            r.metric.clone(),
            r.unit.as_str().to_owned(),
            value(r.base_mean),
            value(r.candidate_mean),
            pct(r.delta_pct),
            interval(r),
            r.verdict.as_str().to_owned(),
        ]);
    }
    let mut width = [0usize; 8];
    for l in &lines {
        for (w, cell) in width.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, (cell, w)) in l.iter().zip(width).enumerate() {
            let pad = w - cell.chars().count();
            // Numbers right-aligned, text left-aligned.
            if (3..=6).contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn class(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "fail",
        Verdict::Improvement => "pass",
        Verdict::Erratic => "inconclusive",
        Verdict::NoChange => "notex",
    }
}

fn color(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "#c81e1e",
        Verdict::Improvement => "#14963c",
        Verdict::Erratic => "#b8860b",
        Verdict::NoChange => "#4666c8",
    }
}

/// A row's Δ and interval as a small inline SVG on a shared scale of ±`range` %: the
/// tolerance band grey, 0 a line, the interval a bar, Δ a dot.
fn interval_svg(r: &CompareRow, tolerance_pct: f64, range: f64) -> String {
    let (w, h) = (260.0, 20.0);
    let x = |p: f64| (p.clamp(-range, range) + range) / (2.0 * range) * w;
    let mut s = format!(
        "<svg class=\"ci\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{} {}\">",
        pct(r.delta_pct),
        interval(r)
    );
    let _ = write!(
        s,
        "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{h}\" fill=\"#e8e8e8\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"0\" y2=\"{h}\" stroke=\"#888\"/>",
        x(-tolerance_pct),
        x(tolerance_pct) - x(-tolerance_pct),
        x(0.0),
        x(0.0)
    );
    let c = color(r.verdict);
    if let (Some(a), Some(b)) = (r.ci_low_pct, r.ci_high_pct) {
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"10\" y2=\"10\" stroke=\"{c}\" stroke-width=\"4\"/>",
            x(a),
            x(b).max(x(a) + 1.0)
        );
    }
    if let Some(d) = r.delta_pct {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"10\" r=\"4.5\" fill=\"{c}\" stroke=\"#fff\"/>",
            x(d)
        );
    }
    s.push_str("</svg>");
    s
}

/// Lines over time, one per run: base runs blue, candidate runs orange.
fn timeline_svg(
    title: &str,
    y_desc: &str,
    timelines: &[Timeline],
    f: fn(&Timeline) -> &[(f64, f64)],
) -> Result<String, ChartError> {
    fonts();
    let (w, h) = (1000u32, 360u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, side) = root.split_horizontally(w - 170);
        let points = || timelines.iter().flat_map(|t| f(t).iter());
        let x_max = points().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points().map(|p| p.1).fold(0.001, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the warm-up")
            .x_label_formatter(&integer)
            .y_label_formatter(&compact)
            .y_desc(y_desc)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let base = RGBColor(70, 110, 200);
        let cand = RGBColor(220, 110, 0);
        for t in timelines {
            let c = if t.side == Side::Base { base } else { cand };
            chart
                .draw_series(LineSeries::new(f(t).iter().copied(), c.stroke_width(2)))
                .map_err(err)?;
        }
        for (i, (label, c)) in [("base", base), ("candidate", cand)].iter().enumerate() {
            let y = 60 + 24 * i as i32;
            side.draw(&PathElement::new(vec![(6, y), (30, y)], c.stroke_width(3)))
                .map_err(err)?;
            side.draw(&Text::new(*label, (36, y - 8), (FONT, 14)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The page: verdict banner, what was compared, one table row per metric with its
/// interval drawn, then for run folders the runs over time.
pub fn html(c: &Compare, loaded: &Loaded) -> Result<String, ChartError> {
    let mut out = String::with_capacity(1 << 18);
    let title = format!("Comparison of {} folders", c.kind);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title>\n<style>{STYLE}\
svg.ci{{display:block}}td.ci{{width:262px}}tr.why td{{font-size:12px;color:#444;border-top:none;padding-top:0}}table.cmp td:first-child{{white-space:nowrap}}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    let banner = if c.regressions > 0 { "fail" } else { "pass" };
    let _ = writeln!(
        out,
        "<div class=\"banner {banner}\" id=\"verdict\">{}</div>",
        esc(result_line(c).trim_start_matches("RESULT: "))
    );
    let list = |dirs: &[String], commits: &[String]| -> String {
        dirs.iter()
            .zip(commits.iter().chain(std::iter::repeat(&String::new())))
            .map(|(d, k)| {
                let k = if k.is_empty() {
                    String::new()
                } else {
                    format!(" <small>({})</small>", esc(&k[..k.len().min(12)]))
                };
                format!("{}{k}", esc(d))
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let _ = writeln!(
        out,
        "<table class=\"meta\"><tr><th>base</th><td>{}</td></tr><tr><th>candidate</th><td>{}</td></tr>\
<tr><th>judged</th><td>{} confidence for the whole comparison (each interval at {}), {:.0}% tolerance; a series with a coefficient of variation above {} is erratic unless it moved by more than its spread</td></tr></table>",
        list(&c.base, &c.base_commits),
        list(&c.candidate, &c.candidate_commits),
        super::percent(c.confidence),
        super::percent(c.per_metric_confidence),
        100.0 * c.tolerance,
        c.erratic_cv
    );
    let tol = 100.0 * c.tolerance;
    // One scale for every row, wide enough for the intervals that decided something
    // (erratic ones may run off it), at most ±100%.
    let range = c
        .rows
        .iter()
        .filter(|r| r.verdict != Verdict::Erratic)
        .flat_map(|r| [r.ci_low_pct, r.ci_high_pct, r.delta_pct])
        .flatten()
        .map(f64::abs)
        .fold(2.0 * tol, f64::max)
        .min(100.0);
    let _ = writeln!(
        out,
        "<h2>Metrics</h2>\n<p>Δ is the candidate's mean against the base's, with its interval; the grey band is the ±{tol:.0}% tolerance, the scale ±{range:.0}% (longer intervals are cut at its edge).</p>"
    );
    let mut scenarios: Vec<&str> = Vec::new();
    for r in &c.rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for scenario in scenarios {
        let _ = writeln!(
            out,
            "<h3>{}</h3>\n<table class=\"cmp\"><tr><th>metric</th><th>base mean</th><th>candidate mean</th><th>Δ mean</th><th>interval</th><th>Δ and interval</th><th>verdict</th></tr>",
            esc(scenario)
        );
        for r in c.rows.iter().filter(|r| r.scenario == scenario) {
            let _ = writeln!(
                out,
                "<tr class=\"{cls}\"><td>{} <small>{}</small></td><td class=\"n\">{} <small>(n {}, CV {:.3})</small></td><td class=\"n\">{} <small>(n {}, CV {:.3})</small></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"ci\">{}</td><td>{}</td></tr>\n<tr class=\"why {cls}\"><td colspan=\"7\">{}: {}</td></tr>",
                esc(&r.metric),
                esc(r.unit.as_str()),
                value(r.base_mean),
                r.base_n,
                r.base_cv,
                value(r.candidate_mean),
                r.candidate_n,
                r.candidate_cv,
                pct(r.delta_pct),
                interval(r),
                interval_svg(r, tol, range),
                r.verdict,
                r.method,
                esc(&r.detail),
                cls = class(r.verdict),
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<dl class=\"legend\">\
<dt class=\"fail\">regression</dt><dd>worse by at least the tolerance, the interval excluding 0 (exit code 1)</dd>\
<dt class=\"pass\">improvement</dt><dd>better by at least the tolerance, the interval excluding 0</dd>\
<dt class=\"inconclusive\">erratic</dt><dd>too noisy to judge: never a failure; run more or longer replicates</dd>\
<dt class=\"notex\">no change</dt><dd>the interval contains 0, or the change is within the tolerance</dd>\
</dl>\n");
    if !loaded.timelines.is_empty() {
        out.push_str("<h2>Over time</h2>\n");
        for (title, y, f) in [
            (
                "Delivered per second, every run",
                "messages / s",
                (|t: &Timeline| t.throughput.as_slice()) as fn(&Timeline) -> &[(f64, f64)],
            ),
            ("p99 end to end per second, every run", "ms", |t| {
                t.p99_ms.as_slice()
            }),
        ] {
            let _ = writeln!(
                out,
                "<figure>{}</figure>",
                timeline_svg(title, y, &loaded.timelines, f)?
            );
        }
    }
    if !c.notes.is_empty() {
        out.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &c.notes {
            let _ = writeln!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<p><a href=\"compare.csv\">compare.csv</a> · <a href=\"compare.json\">compare.json</a></p>\n</body></html>\n");
    Ok(out)
}

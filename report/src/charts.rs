//! Charts, each drawn once through plotters for any backend and rendered twice: SVG for the
//! HTML page (sharp at any width) and PNG for `charts/` (export). No file I/O here, so they
//! are tested without files. PNG text uses DejaVu Sans embedded in the binary (no system
//! font needed); SVG text is drawn by the browser.
//!
//! Conventions: each title once (in the chart); counts on integer ticks; category axes
//! named by their categories; legends in a panel beside the plot, never over the data;
//! the first and last second of a run (partial) left out of per-second lines.

use crate::checks::latency::{merge, overall};
use crate::checks::weights::shares;
use crate::model::{Run, SecondLatency};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::collections::BTreeMap;
use std::sync::Once;

/// A rendered chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File stem under `charts/` (`throughput` -> `charts/throughput.png`).
    pub name: &'static str,
    /// Title, as drawn in the chart.
    pub title: String,
    /// PNG bytes.
    pub png: Vec<u8>,
    /// SVG text.
    pub svg: String,
}

const W: u32 = 1000;
const H: u32 = 420;
/// Width of the legend panel beside a line chart.
const LEGEND_W: u32 = 150;
pub(crate) const FONT: &str = "sans-serif";

const GREEN: RGBColor = RGBColor(20, 150, 60);
const RED: RGBColor = RGBColor(200, 30, 30);
const ORANGE: RGBColor = RGBColor(200, 90, 0);
const STEEL: RGBColor = RGBColor(70, 110, 200);
const PURPLE: RGBColor = RGBColor(120, 60, 160);

pub(crate) fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu is a valid TrueType font; should registration fail anyway, charts still
        // draw their lines and only lose their text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Plotters refused a drawing operation (its message).
    #[error("drawing: {0}")]
    Draw(String),
    /// The bitmap could not be encoded as PNG.
    #[error("encoding PNG: {0}")]
    Encode(image::ImageError),
}

pub(crate) fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// A chart's drawing, for any backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError>;
}

/// Draws `d` on a white W x H canvas twice: as PNG and as SVG.
fn render(name: &'static str, title: String, d: &impl Draw) -> Result<Chart, ChartError> {
    fonts();
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        d.draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &buf,
        W,
        H,
        image::ColorType::Rgb8,
    )
    .map_err(ChartError::Encode)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        d.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        name,
        title,
        png,
        svg,
    })
}

/// The first second of the run (x axes count from it).
fn start_second(run: &Run) -> u64 {
    let a = run.sent_per_second.keys().next().copied();
    let b = run
        .analyzers
        .iter()
        .filter_map(|x| x.per_second.keys().next().copied())
        .min();
    a.into_iter().chain(b).min().unwrap_or(0)
}

/// The whole seconds of the run: its first and last second are partial.
fn whole_seconds(run: &Run) -> std::ops::RangeInclusive<u64> {
    let last = run
        .sent_per_second
        .keys()
        .next_back()
        .copied()
        .into_iter()
        .chain(
            run.analyzers
                .iter()
                .filter_map(|a| a.per_second.keys().next_back().copied()),
        )
        .max()
        .unwrap_or(0);
    start_second(run) + 1..=last.saturating_sub(1)
}

/// The entries of `per_second` in the run's whole seconds. A run shorter than three
/// seconds has none (and its empty range would make `BTreeMap::range` panic).
fn in_whole_seconds<'a, V>(
    run: &Run,
    per_second: &'a BTreeMap<u64, V>,
) -> impl Iterator<Item = (&'a u64, &'a V)> {
    let whole = whole_seconds(run);
    let range = (!whole.is_empty()).then(|| per_second.range(whole));
    range.into_iter().flatten()
}

/// Per-second values of the whole seconds as points, x in seconds since the start.
fn points(run: &Run, per_second: &BTreeMap<u64, u64>) -> Vec<(f64, f64)> {
    let t0 = start_second(run);
    in_whole_seconds(run, per_second)
        .map(|(s, n)| ((s - t0) as f64, *n as f64))
        .collect()
}

pub(crate) fn integer(v: &f64) -> String {
    format!("{v:.0}")
}

/// A measurement on an axis: whole numbers from 100 up, fewer decimals the larger it is.
pub(crate) fn compact(v: &f64) -> String {
    match v.abs() {
        0.0 => "0".to_owned(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Chaos events as (seconds since start, label): one mark per action and second, its
/// targets named (`slow c1 c2 +6`), so simultaneous events do not print over each other.
fn event_marks(run: &Run) -> Vec<(f64, String)> {
    let t0 = start_second(run) as f64;
    let mut marks: Vec<(f64, String, Vec<&str>)> = Vec::new();
    for e in &run.events {
        let x = e.ts_ns as f64 / 1e9 - t0;
        match marks.last_mut() {
            Some((at, action, targets))
                if (x - *at).abs() < 1.0 && *action == e.action.as_str() =>
            {
                targets.push(&e.target)
            }
            // The distributor's own events are named short: the mark says enough.
            _ if e.action.on_distributor() => marks.push((
                x,
                match e.action {
                    runfolder::ChaosAction::KillDistributor => "crash",
                    _ => "restart",
                }
                .to_owned(),
                vec!["distributor"],
            )),
            _ => marks.push((x, e.action.as_str().to_owned(), vec![&e.target])),
        }
    }
    marks
        .into_iter()
        .map(|(x, action, targets)| {
            let shown: Vec<&str> = targets.iter().take(2).copied().collect();
            let more = targets.len().saturating_sub(2);
            let label = if more > 0 {
                format!("{action} {} +{more}", shown.join(" "))
            } else {
                format!("{action} {}", shown.join(" "))
            };
            (x, label)
        })
        .collect()
}

/// Alerts of the run's Prometheus as (from, to, label) in seconds since the start; `to`
/// is `None` for an alert still firing at the end.
fn alert_spans(run: &Run) -> Vec<(f64, Option<f64>, String)> {
    let t0 = start_second(run) as f64;
    run.alerts
        .iter()
        .flatten()
        .map(|a| {
            let who = a
                .label("analyzer")
                .or(a.label("reason"))
                .unwrap_or_default();
            (
                a.fired_ns as f64 / 1e9 - t0,
                a.resolved_ns.map(|r| r as f64 / 1e9 - t0),
                format!("{} {who}", a.alert).trim_end().to_owned(),
            )
        })
        .collect()
}

/// A named line: legend label, colour, stroke width, points.
struct Series {
    label: &'static str,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn new(label: &'static str, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            label,
            color,
            width: 2,
            points,
        }
    }
}

/// Draws the legend of `series` in `area` (the panel beside the plot).
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[&Series],
) -> Result<(), ChartError> {
    for (i, s) in series.iter().enumerate() {
        let y = 60 + 24 * i as i32;
        area.draw(&PathElement::new(
            vec![(6, y), (30, y)],
            s.color.stroke_width(s.width.max(2)),
        ))
        .map_err(err)?;
        area.draw(&Text::new(s.label, (36, y - 8), (FONT, 14)))
            .map_err(err)?;
    }
    Ok(())
}

/// One panel of lines: over the run's seconds with its chaos events marked, or over
/// another x axis (priority levels).
struct TimePanel<'a> {
    run: &'a Run,
    title: String,
    /// The x axis, when it is not the run's seconds (then no chaos marks).
    x_desc: Option<&'static str>,
    y_desc: &'static str,
    /// Integer ticks on y (counts).
    counts: bool,
    /// Draw the alerts of the run's Prometheus (the throughput chart, the chaos timeline).
    alerts: bool,
    series: Vec<Series>,
}

impl TimePanel<'_> {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let (plot, side) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_W);
        let x_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0, f64::max);
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(if self.counts { 1.0 } else { 0.1 }, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_desc.unwrap_or("seconds since start"))
            .x_label_formatter(&integer)
            .y_desc(self.y_desc)
            .label_style((FONT, 14));
        if self.counts {
            mesh.y_label_formatter(&integer);
        } else {
            mesh.y_label_formatter(&compact);
        }
        mesh.draw().map_err(err)?;
        for s in &self.series {
            let style = if s.width > 2 {
                s.color.mix(0.35).stroke_width(s.width)
            } else {
                s.color.stroke_width(s.width)
            };
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?;
        }
        let marks = if self.x_desc.is_none() {
            event_marks(self.run)
        } else {
            Vec::new()
        };
        let visible = marks.into_iter().filter(|(x, _)| (0.0..=x_max).contains(x));
        for (i, (x, label)) in visible.enumerate() {
            chart
                .draw_series(LineSeries::new([(x, 0.0), (x, y_max)], RED.mix(0.6)))
                .map_err(err)?;
            // Three rows of labels, in turn, so neighbours (a crash 10 s before a
            // restart, say) do not print over each other.
            let row = (i % 3) as f64;
            chart
                .draw_series([Text::new(
                    label,
                    (x, y_max * (0.97 - 0.045 * row)),
                    (FONT, 12).into_font().color(&RED),
                )])
                .map_err(err)?;
        }
        if self.alerts && self.x_desc.is_none() {
            // Alerts as bars from firing to resolved, stacked under the top of the plot.
            for (i, (from, to, label)) in alert_spans(self.run).into_iter().enumerate() {
                let y = y_max * (0.88 - 0.06 * (i % 8) as f64);
                let to = to.unwrap_or(x_max).min(x_max);
                let from = from.max(0.0);
                if from > x_max {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(
                        [(from, y), (to.max(from), y)],
                        ORANGE.stroke_width(5),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series([Text::new(
                        label,
                        (from, y * 0.985),
                        (FONT, 12).into_font().color(&ORANGE),
                    )])
                    .map_err(err)?;
            }
        }
        legend(&side, &self.series.iter().collect::<Vec<_>>())
    }
}

impl Draw for TimePanel<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        self.draw_on(root)
    }
}

/// Panels stacked vertically (quantities with different units get their own axes).
struct Stacked<'a>(Vec<TimePanel<'a>>);

impl Draw for Stacked<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let areas = root.split_evenly((self.0.len(), 1));
        for (panel, area) in self.0.iter().zip(&areas) {
            panel.draw_on(area)?;
        }
        Ok(())
    }
}

/// Sent vs delivered messages per second, with chaos events.
pub fn throughput(run: &Run) -> Result<Chart, ChartError> {
    let delivered = run.arrivals_per_second();
    let title = "Throughput: sent vs delivered per second".to_owned();
    // Sent wide and light under a thin delivered line: where they agree both stay visible.
    let mut sent = Series::new("sent", BLUE, points(run, &run.sent_per_second));
    sent.width = 8;
    let panel = TimePanel {
        run,
        title: title.clone(),
        x_desc: None,
        y_desc: "messages / s",
        counts: true,
        alerts: true,
        series: vec![
            sent,
            Series::new("delivered", GREEN, points(run, &delivered)),
        ],
    };
    render("throughput", title, &panel)
}

/// Bars over named categories.
struct Bars {
    title: String,
    y_desc: &'static str,
    /// Integer ticks on y (counts).
    counts: bool,
    bars: Vec<Bar>,
}

/// One bar: category, height, colour, and the band `(lo, hi, expected)` drawn behind and
/// over it, when there is one.
type Bar = (String, f64, RGBColor, Option<(f64, f64, f64)>);

impl Draw for Bars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let n = self.bars.len().max(1);
        let y_max = self
            .bars
            .iter()
            .map(|b| b.1.max(b.3.map_or(0.0, |band| band.1)))
            .fold(if self.counts { 1.0 } else { 0.05 }, f64::max)
            * 1.15;
        let names: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        let label = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        // Category i is centred on x = i, so the axis ticks name the bars.
        let mut chart: ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>> =
            ChartBuilder::on(root)
                .caption(&self.title, (FONT, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(90)
                .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_max)
                .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(self.y_desc)
            .label_style((FONT, 14));
        if self.counts {
            mesh.y_label_formatter(&integer);
        }
        mesh.draw().map_err(err)?;
        for (i, (_, v, color, band)) in self.bars.iter().enumerate() {
            let x = i as f64;
            if let Some((lo, hi, _)) = band {
                chart
                    .draw_series([Rectangle::new(
                        [(x - 0.4, *lo), (x + 0.4, *hi)],
                        RGBColor(240, 160, 40).mix(0.35).filled(),
                    )])
                    .map_err(err)?;
            }
            chart
                .draw_series([Rectangle::new(
                    [(x - 0.25, 0.0), (x + 0.25, *v)],
                    color.filled(),
                )])
                .map_err(err)?;
            if let Some((_, _, expected)) = band {
                chart
                    .draw_series(LineSeries::new(
                        [(x - 0.4, *expected), (x + 0.4, *expected)],
                        ORANGE.stroke_width(3),
                    ))
                    .map_err(err)?;
            }
            let text = if self.counts {
                format!("{v:.0}")
            } else {
                format!("{v:.4}")
            };
            chart
                .draw_series([Text::new(text, (x - 0.25, v + y_max * 0.06), (FONT, 13))])
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Share per analyzer vs expected, with the tolerance band.
pub fn shares_chart(run: &Run) -> Result<Chart, ChartError> {
    let tol = run.settings.weight_tolerance;
    let title = format!(
        "Share per analyzer: observed (bar) vs expected (line), ±{:.0}% band",
        tol * 100.0
    );
    let bars = Bars {
        title: title.clone(),
        y_desc: "share of deliveries",
        counts: false,
        bars: shares(run)
            .into_iter()
            .map(|(id, observed, expected)| {
                let band = (expected * (1.0 - tol), expected * (1.0 + tol), expected);
                (id, observed, STEEL, Some(band))
            })
            .collect(),
    };
    render("shares", title, &bars)
}

/// Per priority level: (level, p50, p99, max) end-to-end latency in ms.
pub fn latency_levels(run: &Run) -> Vec<(u8, f64, f64, f64)> {
    let ms = |v: u64| v as f64 / 1000.0;
    merge(run.analyzers.iter().map(|a| &a.latency))
        .iter()
        .map(|(p, h)| {
            (
                *p,
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        })
        .collect()
}

/// p50 / p99 / max latency per priority level; `None` with fewer than two levels (a table
/// says it better).
pub fn latency_by_priority(run: &Run) -> Result<Option<Chart>, ChartError> {
    let levels = latency_levels(run);
    if levels.len() < 2 {
        return Ok(None);
    }
    let line = |f: fn(&(u8, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        levels.iter().map(|l| (f64::from(l.0), f(l))).collect()
    };
    let title = "End-to-end latency by priority (0 = most urgent)".to_owned();
    let chart = TimePanel {
        run,
        title: title.clone(),
        x_desc: Some("priority"),
        y_desc: "latency, ms",
        counts: false,
        alerts: false,
        series: vec![
            Series::new("p50", GREEN, line(|l| l.1)),
            Series::new("p99", BLUE, line(|l| l.2)),
            Series::new("max", RED, line(|l| l.3)),
        ],
    };
    render("latency_by_priority", title, &chart).map(Some)
}

/// Latency percentiles per second over the run.
pub fn latency_over_time(run: &Run) -> Result<Chart, ChartError> {
    let per = run.latency_per_second();
    let t0 = start_second(run);
    let line = |f: fn(&SecondLatency) -> u64| -> Vec<(f64, f64)> {
        in_whole_seconds(run, &per)
            .map(|(s, v)| ((s - t0) as f64, f(v) as f64 / 1000.0))
            .collect()
    };
    let title = "Latency per second (largest over analyzers)".to_owned();
    let panel = TimePanel {
        run,
        title: title.clone(),
        x_desc: None,
        y_desc: "latency, ms",
        counts: false,
        alerts: false,
        series: vec![
            Series::new("p50", GREEN, line(|v| v.p50)),
            Series::new("p99", BLUE, line(|v| v.p99)),
        ],
    };
    render("latency_over_time", title, &panel)
}

/// Frames queued in the distributor per second.
pub fn queue_depth(run: &Run) -> Result<Chart, ChartError> {
    let title = "Distributor queue depth (frames queued over all analyzers)".to_owned();
    let panel = TimePanel {
        run,
        title: title.clone(),
        x_desc: None,
        y_desc: "frames",
        counts: true,
        alerts: false,
        series: vec![Series::new(
            "queued",
            PURPLE,
            points(run, &run.distributor.queued),
        )],
    };
    render("queue_depth", title, &panel)
}

/// Distributor CPU and RSS over time, each on its own axis.
pub fn resources(run: &Run) -> Result<Chart, ChartError> {
    let t0 = start_second(run) as f64;
    let series = |f: fn(&crate::model::Resource) -> f64| -> Vec<(f64, f64)> {
        run.resources
            .iter()
            .map(|r| (r.ts_ns as f64 / 1e9 - t0, f(r)))
            .filter(|p| p.0 >= 0.0)
            .collect()
    };
    let title = "Distributor CPU and memory".to_owned();
    let stacked = Stacked(vec![
        TimePanel {
            run,
            title: "Distributor CPU (% of one core)".to_owned(),
            x_desc: None,
            y_desc: "CPU %",
            counts: false,
            alerts: false,
            series: vec![Series::new("cpu %", ORANGE, series(|r| r.cpu_pct))],
        },
        TimePanel {
            run,
            title: "Distributor resident memory (MiB)".to_owned(),
            x_desc: None,
            y_desc: "RSS MiB",
            counts: false,
            alerts: false,
            series: vec![Series::new(
                "rss MiB",
                STEEL,
                series(|r| r.rss_bytes as f64 / (1 << 20) as f64),
            )],
        },
    ]);
    render("resources", title, &stacked)
}

/// Accounting bars: sent, delivered unique, duplicates, dropped, missing.
pub fn accounting(run: &Run) -> Result<Chart, ChartError> {
    let sent: u64 = run.emitters.iter().map(|e| e.sent).sum();
    let unique: u64 = run.emitters.iter().map(|e| run.seen.unique(e.id)).sum();
    let bar = |name: &str, v: u64, color: RGBColor| (name.to_owned(), v as f64, color, None);
    let title =
        "Accounting: every message sent, delivered, duplicated, dropped or missing".to_owned();
    let bars = Bars {
        title: title.clone(),
        y_desc: "messages",
        counts: true,
        bars: vec![
            bar("sent", sent, BLUE),
            bar("delivered unique", unique, GREEN),
            bar("duplicates", run.seen.duplicates, RGBColor(240, 160, 40)),
            bar("dropped", run.distributor.dropped_total(), PURPLE),
            bar("missing", sent.saturating_sub(unique), RED),
        ],
    };
    render("accounting", title, &bars)
}

/// Every chart the run has data for.
pub fn all(run: &Run) -> Result<Vec<Chart>, ChartError> {
    let mut out = vec![throughput(run)?, shares_chart(run)?, accounting(run)?];
    if overall(&merge(run.analyzers.iter().map(|a| &a.latency))).is_some() {
        out.extend(latency_by_priority(run)?);
        out.push(latency_over_time(run)?);
    }
    if !run.distributor.queued.is_empty() {
        out.push(queue_depth(run)?);
    }
    if !run.resources.is_empty() {
        out.push(resources(run)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_renders_as_png_and_scalable_svg() {
        let run = Run::default();
        let c = accounting(&run).unwrap();
        assert_eq!(&c.png[1..4], b"PNG");
        assert!(c.svg.starts_with("<svg") && c.svg.contains("viewBox=\"0 0 1000 420\""));
        assert!(
            c.svg.contains("delivered unique"),
            "categories name the axis"
        );
        assert!(
            latency_by_priority(&run).unwrap().is_none(),
            "no levels, no chart"
        );
    }
}

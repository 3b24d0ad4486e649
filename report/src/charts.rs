//! Charts as PNG bytes (plotters on an in-memory bitmap; no file I/O, so they are tested
//! without files). Text uses DejaVu Sans embedded in the binary: no system font needed.

use crate::checks::latency::{merge, overall};
use crate::checks::weights::shares;
use crate::model::Run;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::sync::Once;

/// A rendered chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File name under `charts/`.
    pub name: &'static str,
    /// Title, also the HTML caption.
    pub title: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

const W: u32 = 1000;
const H: u32 = 420;
const FONT: &str = "sans-serif";

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu is a valid TrueType font; should registration fail anyway, charts still
        // draw their lines and only lose their text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A named line: legend label, colour, points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Draws with `f` on a white W x H bitmap and encodes it as PNG.
fn render(f: impl FnOnce(&Area) -> Result<(), ChartError>) -> Result<Vec<u8>, ChartError> {
    fonts();
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        f(&root)?;
        root.present().map_err(err)?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &buf,
        W,
        H,
        image::ColorType::Rgb8,
    )?;
    Ok(png)
}

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Plotters refused a drawing operation (its message).
    #[error("drawing: {0}")]
    Draw(String),
    /// The bitmap could not be encoded as PNG.
    #[error("encoding PNG: {0}")]
    Encode(#[from] image::ImageError),
}

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(e.to_string())
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

/// A chart of `n` categories (one unit of x each) with its y axis drawn. Bars are named
/// above themselves, so the x axis carries no numbers.
fn category_chart<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    n: f64,
    y_max: f64,
    y_desc: &str,
) -> Result<
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    ChartError,
> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..n, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Per-second counts as points, x in seconds since `t0`.
fn points(per_second: &std::collections::BTreeMap<u64, u64>, t0: u64) -> Vec<(f64, f64)> {
    per_second
        .iter()
        .map(|(s, n)| (s.saturating_sub(t0) as f64, *n as f64))
        .collect()
}

/// A line chart of several series over the run's seconds, with chaos events marked.
fn time_chart(
    run: &Run,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<Vec<u8>, ChartError> {
    let x_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let t0 = start_second(run) as f64;
    render(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(y_desc)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (name, color, points) in series {
            let c = *color;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        for e in &run.events {
            let x = e.ts_ns as f64 / 1e9 - t0;
            if !(0.0..=x_max).contains(&x) {
                continue;
            }
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(LineSeries::new([(x, 0.0), (x, y_max)], red.mix(0.6)))
                .map_err(err)?;
            chart
                .draw_series([Text::new(
                    format!("{} {}", e.action, e.target),
                    (x, y_max * 0.97),
                    (FONT, 12).into_font().color(&red),
                )])
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    })
}

/// Sent vs delivered messages per second, with chaos events.
pub fn throughput(run: &Run) -> Result<Chart, ChartError> {
    let t0 = start_second(run);
    let sent = points(&run.sent_per_second, t0);
    let mut delivered = std::collections::BTreeMap::<u64, u64>::new();
    for a in &run.analyzers {
        for (s, n) in &a.per_second {
            *delivered.entry(*s).or_default() += n;
        }
    }
    let delivered = points(&delivered, t0);
    let title = "Throughput: sent vs delivered per second".to_owned();
    let png = time_chart(
        run,
        &title,
        "messages / s",
        &[
            ("sent", BLUE, sent),
            ("delivered", RGBColor(20, 150, 60), delivered),
        ],
    )?;
    Ok(Chart {
        name: "throughput.png",
        title,
        png,
    })
}

/// Share per analyzer vs expected, with the tolerance band.
pub fn shares_chart(run: &Run) -> Result<Chart, ChartError> {
    let rows = shares(run);
    let tol = run.settings.weight_tolerance;
    let n = rows.len().max(1) as f64;
    let y_max = rows
        .iter()
        .map(|r| r.1.max(r.2 * (1.0 + tol)))
        .fold(0.05, f64::max)
        * 1.15;
    let title = format!(
        "Share per analyzer: observed (blue bar) vs expected (line), ±{:.0}% band",
        tol * 100.0
    );
    let png = render(|root| {
        let mut chart = category_chart(root, &title, n, y_max, "share of deliveries")?;
        for (i, (id, observed, expected)) in rows.iter().enumerate() {
            let x = i as f64;
            let top = observed.max(expected * (1.0 + tol)) + y_max * 0.07;
            chart
                .draw_series([Text::new(id.clone(), (x + 0.3, top), (FONT, 14))])
                .map_err(err)?;
            // The band behind, the (narrower) bar over it, the expected line on top.
            let band = [
                (x + 0.1, expected * (1.0 - tol)),
                (x + 0.9, expected * (1.0 + tol)),
            ];
            chart
                .draw_series([Rectangle::new(
                    band,
                    RGBColor(240, 160, 40).mix(0.35).filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series([Rectangle::new(
                    [(x + 0.3, 0.0), (x + 0.7, *observed)],
                    RGBColor(70, 110, 200).filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    [(x + 0.1, *expected), (x + 0.9, *expected)],
                    RGBColor(200, 90, 0).stroke_width(3),
                ))
                .map_err(err)?;
        }
        Ok(())
    })?;
    Ok(Chart {
        name: "shares.png",
        title,
        png,
    })
}

/// p50 / p99 / max latency per priority level.
pub fn latency_by_priority(run: &Run) -> Result<Chart, ChartError> {
    let by_p = merge(run.analyzers.iter().map(|a| &a.latency));
    let ms = |v: u64| v as f64 / 1000.0;
    let series: Vec<Series> = vec![
        (
            "p50",
            RGBColor(20, 150, 60),
            by_p.iter()
                .map(|(p, h)| (f64::from(*p), ms(h.value_at_quantile(0.5))))
                .collect(),
        ),
        (
            "p99",
            BLUE,
            by_p.iter()
                .map(|(p, h)| (f64::from(*p), ms(h.value_at_quantile(0.99))))
                .collect(),
        ),
        (
            "max",
            RGBColor(200, 30, 30),
            by_p.iter()
                .map(|(p, h)| (f64::from(*p), ms(h.max())))
                .collect(),
        ),
    ];
    let x_max = by_p.keys().last().map_or(1.0, |p| f64::from(*p) + 1.0);
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.1, f64::max)
        * 1.1;
    let title = "End-to-end latency by priority (0 = most urgent)".to_owned();
    let png = render(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("priority")
            .y_desc("latency, ms")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (name, color, points) in &series {
            let c = *color;
            if points.len() == 1 {
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    })?;
    Ok(Chart {
        name: "latency_by_priority.png",
        title,
        png,
    })
}

/// Latency percentiles per second over the run.
pub fn latency_over_time(run: &Run) -> Result<Chart, ChartError> {
    let t0 = start_second(run);
    let mut per: std::collections::BTreeMap<u64, (u64, u64)> = std::collections::BTreeMap::new();
    for a in &run.analyzers {
        for (s, (p50, p99, _)) in &a.latency_per_second {
            let e = per.entry(*s).or_default();
            *e = (e.0.max(*p50), e.1.max(*p99));
        }
    }
    let p50 = per
        .iter()
        .map(|(s, v)| (s.saturating_sub(t0) as f64, v.0 as f64 / 1000.0))
        .collect();
    let p99 = per
        .iter()
        .map(|(s, v)| (s.saturating_sub(t0) as f64, v.1 as f64 / 1000.0))
        .collect();
    let title = "Latency per second (largest over analyzers)".to_owned();
    let png = time_chart(
        run,
        &title,
        "latency, ms",
        &[("p50", RGBColor(20, 150, 60), p50), ("p99", BLUE, p99)],
    )?;
    Ok(Chart {
        name: "latency_over_time.png",
        title,
        png,
    })
}

/// Frames queued in the distributor per second.
pub fn queue_depth(run: &Run) -> Result<Chart, ChartError> {
    let t0 = start_second(run);
    let q = points(&run.distributor.queued, t0);
    let title = "Distributor queue depth (frames queued over all analyzers)".to_owned();
    let png = time_chart(
        run,
        &title,
        "frames",
        &[("queued", RGBColor(120, 60, 160), q)],
    )?;
    Ok(Chart {
        name: "queue_depth.png",
        title,
        png,
    })
}

/// Distributor CPU and RSS over time.
pub fn resources(run: &Run) -> Result<Chart, ChartError> {
    let t0 = start_second(run) as f64;
    let cpu = run
        .resources
        .iter()
        .map(|r| (r.ts_ns as f64 / 1e9 - t0, r.cpu_pct))
        .filter(|p| p.0 >= 0.0)
        .collect();
    let rss = run
        .resources
        .iter()
        .map(|r| {
            (
                r.ts_ns as f64 / 1e9 - t0,
                r.rss_bytes as f64 / (1 << 20) as f64,
            )
        })
        .filter(|p| p.0 >= 0.0)
        .collect();
    let title = "Distributor CPU (% of one core) and RSS (MiB)".to_owned();
    let png = time_chart(
        run,
        &title,
        "% / MiB",
        &[
            ("cpu %", RGBColor(200, 90, 0), cpu),
            ("rss MiB", RGBColor(70, 110, 200), rss),
        ],
    )?;
    Ok(Chart {
        name: "resources.png",
        title,
        png,
    })
}

/// Accounting bars: sent, delivered unique, duplicates, dropped, lost.
pub fn accounting(run: &Run) -> Result<Chart, ChartError> {
    let sent: u64 = run.emitters.iter().map(|e| e.sent).sum();
    let unique: u64 = run.emitters.iter().map(|e| run.seen.unique(e.id)).sum();
    let bars = [
        ("sent", sent, BLUE),
        ("delivered unique", unique, RGBColor(20, 150, 60)),
        ("duplicates", run.seen.duplicates, RGBColor(240, 160, 40)),
        (
            "dropped",
            run.distributor.dropped_total(),
            RGBColor(120, 60, 160),
        ),
        (
            "missing",
            sent.saturating_sub(unique),
            RGBColor(200, 30, 30),
        ),
    ];
    let y_max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.15;
    let title =
        "Accounting: every message sent, delivered, duplicated, dropped or missing".to_owned();
    let png = render(|root| {
        let mut chart = category_chart(root, &title, bars.len() as f64, y_max, "messages")?;
        for (i, (name, v, color)) in bars.iter().enumerate() {
            let x = i as f64;
            chart
                .draw_series([Rectangle::new(
                    [(x + 0.15, 0.0), (x + 0.85, *v as f64)],
                    color.filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series([Text::new(
                    format!("{name}: {v}"),
                    (x + 0.15, *v as f64 + y_max * 0.07),
                    (FONT, 14),
                )])
                .map_err(err)?;
        }
        Ok(())
    })?;
    Ok(Chart {
        name: "accounting.png",
        title,
        png,
    })
}

/// Every chart the run has data for.
pub fn all(run: &Run) -> Result<Vec<Chart>, ChartError> {
    let mut out = vec![throughput(run)?, shares_chart(run)?, accounting(run)?];
    if overall(&merge(run.analyzers.iter().map(|a| &a.latency))).is_some() {
        out.push(latency_by_priority(run)?);
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

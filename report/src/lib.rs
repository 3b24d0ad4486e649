//! The report tool: turns a run folder into checks, charts, a self-contained HTML page and
//! `summary.csv`, and a verdict (exit 0 when no check FAILs, 1 when one does, 2 when the
//! input cannot be used).
//!
//! # Layout
//!
//! - [`cli`]: the command line and exit codes.
//! - [`load`]: the run folder's CSVs (polars) into a [`model::Run`].
//! - [`checks`]: weights, priority, integrity, accounting, latency.
//! - [`charts`]: PNG charts (plotters), returned as bytes.
//! - [`render`]: `summary.csv`, the HTML page and the verdict lines, returned as text.
//! - [`synth`]: synthetic run folders for tests and the benchmark.

pub mod charts;
pub mod checks;
pub mod cli;
pub mod load;
pub mod model;
pub mod render;
pub mod synth;

use anyhow::Context as _;
use std::path::Path;

/// The result of a report.
#[derive(Debug)]
pub struct Report {
    /// Every check with its figures.
    pub outcomes: Vec<checks::Outcome>,
    /// Notes about the input.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether any check FAILed.
    pub fn failed(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| o.status == checks::Status::Fail)
    }
}

/// Reads `dir`, runs the checks, writes `summary.csv`, `report.html` and `charts/*.png`
/// into it. `Err` with a [`load::InputError`] inside means unusable input.
pub fn run(dir: &Path, overrides: &model::Overrides) -> anyhow::Result<Report> {
    let data = load::run(dir, overrides)?;
    let outcomes = checks::all(&data);
    let charts = charts::all(&data).context("drawing charts")?;
    let chart_dir = dir.join("charts");
    std::fs::create_dir_all(&chart_dir)
        .with_context(|| format!("cannot create {}", chart_dir.display()))?;
    for c in &charts {
        let path = chart_dir.join(c.name);
        std::fs::write(&path, &c.png)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let page = render::html_page(
        &format!("Run report: {name}"),
        &outcomes,
        &charts,
        &data.notes,
    );
    std::fs::write(dir.join("report.html"), page)
        .with_context(|| format!("cannot write {}", dir.join("report.html").display()))?;
    let summary = dir.join(runfolder::names::SUMMARY_CSV);
    let bytes = render::summary_csv(&outcomes).context("encoding summary.csv")?;
    std::fs::write(&summary, bytes)
        .with_context(|| format!("cannot write {}", summary.display()))?;
    Ok(Report {
        outcomes,
        notes: data.notes,
    })
}

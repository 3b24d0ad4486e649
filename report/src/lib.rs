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
//! - [`compare`]: `report compare`, the regression gate between runs or benches.

pub mod charts;
pub mod checks;
pub mod cli;
pub mod compare;
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
    /// The run's verdict: FAIL, INCONCLUSIVE or PASS (see [`checks::overall`]).
    pub fn result(&self) -> checks::Status {
        checks::overall(&self.outcomes)
    }

    /// The exit code of the verdict: 0 PASS, 1 FAIL, 3 INCONCLUSIVE (2 is unusable input).
    pub fn exit_code(&self) -> u8 {
        match self.result() {
            checks::Status::Pass | checks::Status::NotExercised | checks::Status::Info => 0,
            checks::Status::Fail => 1,
            checks::Status::Inconclusive => 3,
        }
    }
}

/// Reads `dir`, runs the checks, writes `summary.csv`, `report.html` and `charts/*.png`
/// into it. `Err` with a [`load::InputError`] inside means unusable input.
pub fn run(dir: &Path, overrides: &model::Overrides) -> anyhow::Result<Report> {
    let mut data = load::run(dir, overrides)?;
    // The page links to what this report writes too.
    for own in [
        runfolder::names::SUMMARY_CSV,
        runfolder::names::SUMMARY_JSON,
    ] {
        if !data.files.iter().any(|f| f == own) {
            data.files.push(own.to_owned());
        }
    }
    data.files.sort();
    let outcomes = checks::all(&data);
    let charts = charts::all(&data).context("drawing charts")?;
    let chart_dir = dir.join("charts");
    std::fs::create_dir_all(&chart_dir)
        .with_context(|| format!("cannot create {}", chart_dir.display()))?;
    for c in &charts {
        let path = chart_dir.join(format!("{}.png", c.name));
        std::fs::write(&path, &c.png)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let page = render::html_page(&format!("Run report: {name}"), &data, &outcomes, &charts);
    std::fs::write(dir.join("report.html"), page)
        .with_context(|| format!("cannot write {}", dir.join("report.html").display()))?;
    let summary = dir.join(runfolder::names::SUMMARY_CSV);
    let bytes = render::summary_csv(&outcomes).context("encoding summary.csv")?;
    std::fs::write(&summary, bytes)
        .with_context(|| format!("cannot write {}", summary.display()))?;
    let json = dir.join(runfolder::names::SUMMARY_JSON);
    let bytes = render::summary_json(&outcomes).context("encoding summary.json")?;
    std::fs::write(&json, bytes).with_context(|| format!("cannot write {}", json.display()))?;
    Ok(Report {
        outcomes,
        notes: data.notes,
    })
}

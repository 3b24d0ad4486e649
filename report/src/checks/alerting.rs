//! The alerts a run's Prometheus fired (`harness --prometheus`, `alerts.csv`) against what
//! happened: every analyzer kill of the chaos schedule must be followed by an
//! `AnalyzerDown` alert for that analyzer within [`WITHIN_S`] seconds; a run without chaos
//! must fire no alert at all. Only runs with `alerts.csv` get this check.

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;
use runfolder::ChaosAction;

/// Seconds from a kill to its `AnalyzerDown` alert at most.
pub const WITHIN_S: f64 = 15.0;

/// The alerting check, or `None` for a run without Prometheus.
pub fn check(run: &Run) -> Option<Outcome> {
    let alerts = run.alerts.as_ref()?;
    let kills: Vec<(u64, &str)> = run
        .events
        .iter()
        .filter(|e| e.action == ChaosAction::Kill)
        .map(|e| (e.ts_ns, e.target.as_str()))
        .collect();
    let fired: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} {} at {:.0} s", a.alert, a.labels, a.fired_at_s))
        .collect();
    if run.events.is_empty() {
        let status = if alerts.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        };
        let op = if alerts.is_empty() { "<=" } else { ">" };
        let detail = if alerts.is_empty() {
            "a run without failures fired no alert".to_owned()
        } else {
            format!("a run without failures fired: {}", fired.join("; "))
        };
        return Some(Outcome {
            status,
            headline: format!("{} alerts fired {op} 0: {detail}", alerts.len()),
            rows: vec![
                Row::new("alerting", status, alerts.len(), 0, detail).measured(
                    alerts.len() as f64,
                    Some(0.0),
                    Unit::None,
                ),
            ],
        });
    }
    if kills.is_empty() {
        return Some(Outcome::not_exercised(
            "alerting",
            format!(
                "not exercised: the chaos schedule killed no analyzer; alerts fired: {}",
                if fired.is_empty() {
                    "none".to_owned()
                } else {
                    fired.join("; ")
                }
            ),
        ));
    }
    let mut rows = Vec::new();
    let mut worst: f64 = 0.0;
    let mut missed = 0;
    for (ts, target) in &kills {
        let delay = alerts
            .iter()
            .filter(|a| a.alert == "AnalyzerDown" && a.label("analyzer") == Some(target))
            .map(|a| (a.fired_ns as f64 - *ts as f64) / 1e9)
            .filter(|d| (-1.0..=WITHIN_S).contains(d))
            .fold(None, |best: Option<f64>, d| {
                Some(best.map_or(d, |b| b.min(d)))
            });
        let (status, value, detail) = match delay {
            Some(d) => {
                worst = worst.max(d);
                (
                    Status::Pass,
                    Some(d),
                    format!("AnalyzerDown for {target} fired {d:.1} s after its kill"),
                )
            }
            None => {
                missed += 1;
                (
                    Status::Fail,
                    None,
                    format!("no AnalyzerDown for {target} within {WITHIN_S} s of its kill"),
                )
            }
        };
        let mut row = Row::new(
            format!("alerting:kill:{target}"),
            status,
            value.map_or_else(|| "none".to_owned(), |d| format!("{d:.1}")),
            WITHIN_S,
            detail,
        );
        row = match value {
            Some(d) => row.measured(d, Some(WITHIN_S), Unit::Seconds),
            None => row,
        };
        rows.push(row);
    }
    let status = if missed == 0 {
        Status::Pass
    } else {
        Status::Fail
    };
    let headline = if missed == 0 {
        format!(
            "every analyzer kill ({}) raised AnalyzerDown within {worst:.1} s <= {WITHIN_S} s; {} alerts fired in all",
            kills.len(),
            alerts.len()
        )
    } else {
        format!(
            "{missed} of {} analyzer kills raised no AnalyzerDown within {WITHIN_S} s; alerts fired: {}",
            kills.len(),
            if fired.is_empty() {
                "none".to_owned()
            } else {
                fired.join("; ")
            }
        )
    };
    let mut all = vec![
        Row::new(
            "alerting",
            status,
            format!("{:.1}", worst),
            WITHIN_S,
            format!(
                "{} kills, {missed} without AnalyzerDown within {WITHIN_S} s; alerts fired: {}",
                kills.len(),
                fired.join("; ")
            ),
        )
        .measured(worst, Some(WITHIN_S), Unit::Seconds),
    ];
    all.extend(rows);
    Some(Outcome {
        status,
        headline,
        rows: all,
    })
}

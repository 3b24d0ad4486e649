//! The alerts a run's Prometheus fired (`harness --prometheus`, `alerts.csv`) against what
//! happened: every analyzer kill of the chaos schedule must be followed by an
//! `AnalyzerDown` alert for that analyzer within [`WITHIN_S`] seconds; a run without chaos
//! must fire no alert at all, but for the ones its `[security]` attempts call for (an
//! impostor: `AnalyzerIdentityRejected`; forbidden frames: `FramesDropped{reason=
//! "forbidden"}`). Only runs with `alerts.csv` get this check.

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;
use runfolder::ChaosAction;

/// Seconds from a kill to its `AnalyzerDown` alert at most.
pub const WITHIN_S: f64 = 15.0;

/// Alerts a run without chaos must fire, from what its `[security]` tried: the impostor's
/// rejected claim to another id raises `AnalyzerIdentityRejected{reason="identity"}`, an
/// emitter's certificate refused as an analyzer `AnalyzerIdentityRejected{reason=
/// "not_allowed"}` (a HELLO refused for its weight raises none), the restricted emitters'
/// forbidden frames `FramesDropped{reason="forbidden"}`. As (alert, label, value).
fn expected(run: &Run) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    let rejected: Vec<&runfolder::rows::Probe> = run
        .probes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|p| p.outcome == runfolder::ProbeOutcome::Rejected)
        .collect();
    if rejected.iter().any(|p| p.identity != p.claimed) {
        out.push(("AnalyzerIdentityRejected", "reason", "identity"));
    }
    if rejected
        .iter()
        .any(|p| p.identity == p.claimed && p.identity != runfolder::profile::IMPOSTOR)
    {
        out.push(("AnalyzerIdentityRejected", "reason", "not_allowed"));
    }
    if run.restricted_sent.is_some_and(|r| r.forbidden > 0) {
        out.push(("FramesDropped", "reason", "forbidden"));
    }
    out
}

/// A run without chaos: exactly the alerts its `[security]` attempts call for fire (none
/// for most runs).
fn without_chaos(run: &Run, alerts: &[runfolder::rows::Alert], fired: &[String]) -> Outcome {
    let want = expected(run);
    let is = |a: &runfolder::rows::Alert, (name, key, value): &(&str, &str, &str)| {
        a.alert == *name && a.label(key) == Some(*value)
    };
    let unexpected: Vec<&runfolder::rows::Alert> = alerts
        .iter()
        .filter(|a| !want.iter().any(|w| is(a, w)))
        .collect();
    let missing: Vec<String> = want
        .iter()
        .filter(|w| !alerts.iter().any(|a| is(a, w)))
        .map(|(name, key, value)| format!("{name}{{{key}=\"{value}\"}}"))
        .collect();
    let status = if unexpected.is_empty() && missing.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let detail = match (want.is_empty(), status) {
        (true, Status::Pass) => "a run without failures fired no alert".to_owned(),
        (true, _) => format!("a run without failures fired: {}", fired.join("; ")),
        (false, Status::Pass) => format!(
            "a run without failures fired exactly what its security attempts call for: {}",
            fired.join("; ")
        ),
        (false, _) => format!(
            "expected only {} for the security attempts; missing: {}; unexpected: {}",
            want.iter()
                .map(|(n, k, v)| format!("{n}{{{k}=\"{v}\"}}"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.is_empty() {
                "none".to_owned()
            } else {
                missing.join(", ")
            },
            if unexpected.is_empty() {
                "none".to_owned()
            } else {
                unexpected
                    .iter()
                    .map(|a| format!("{} {}", a.alert, a.labels))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        ),
    };
    let bad = unexpected.len() + missing.len();
    let op = if bad == 0 { "<=" } else { ">" };
    Outcome {
        status,
        headline: format!("{bad} unexpected or missing alerts {op} 0: {detail}"),
        rows: vec![Row::new("alerting", status, bad, 0, detail).measured(
            bad as f64,
            Some(0.0),
            Unit::None,
        )],
    }
}

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
        return Some(without_chaos(run, alerts, &fired));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Restricted;
    use runfolder::ProbeOutcome;
    use runfolder::rows::{Alert, Probe};

    fn alert(name: &str, labels: &str) -> Alert {
        Alert {
            alert: name.into(),
            labels: labels.into(),
            fired_ns: 1,
            fired_at_s: 1.0,
            resolved_ns: None,
            resolved_at_s: None,
        }
    }

    fn secure_run(alerts: Vec<Alert>) -> Run {
        Run {
            alerts: Some(alerts),
            probes: Some(vec![Probe {
                ts_ns: 1,
                at_s: 5.0,
                identity: "impostor".into(),
                claimed: "a1".into(),
                outcome: ProbeOutcome::Rejected,
                detail: String::new(),
            }]),
            restricted_sent: Some(Restricted {
                allowed: 5,
                forbidden: 5,
            }),
            ..Run::default()
        }
    }

    #[test]
    fn security_attempts_must_raise_their_alerts_and_nothing_else() {
        let identity = alert(
            "AnalyzerIdentityRejected",
            "job=distributor reason=identity severity=critical",
        );
        let forbidden = alert(
            "FramesDropped",
            "job=distributor reason=forbidden severity=warning",
        );
        let both = secure_run(vec![identity.clone(), forbidden.clone()]);
        assert_eq!(check(&both).unwrap().status, Status::Pass);
        let missing = check(&secure_run(vec![identity.clone()])).unwrap();
        assert_eq!(missing.status, Status::Fail);
        assert!(
            missing.headline.contains("missing: FramesDropped"),
            "{}",
            missing.headline
        );
        let extra = secure_run(vec![
            identity,
            forbidden,
            alert(
                "FramesDropped",
                "job=distributor reason=queue_full severity=warning",
            ),
        ]);
        let o = check(&extra).unwrap();
        assert_eq!(o.status, Status::Fail);
        assert!(o.headline.contains("reason=queue_full"), "{}", o.headline);
    }
}

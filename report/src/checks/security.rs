//! What a `tls = true` run tried that had to be refused (`[security]` of the profile):
//!
//! - the impostor: an analyzer with a valid certificate of its own said HELLO with a live
//!   analyzer's id; the distributor must have answered with a REJECT (`security.csv`);
//!   then an emitter's certificate (the loadgen's) said HELLO on the analyzer port, and
//!   the impostor said HELLO as itself with a weight past the access file's limit for it:
//!   each must have been refused too;
//! - the restricted emitters: every message they sent outside the priorities the access
//!   file allows them must be dropped and counted `forbidden`, exactly, and nothing else
//!   may be counted so. (That none of them arrived follows from the accounting check: a
//!   message both delivered and counted dropped would leave sent < delivered + dropped.)
//!
//! Only runs whose profile has `[security]` get this check.

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;
use runfolder::ProbeOutcome;
use runfolder::profile::IMPOSTOR;
use runfolder::rows::Probe;

/// The loadgen's certificate identity: an emitter's.
const LOADGEN: &str = "loadgen";

/// The security check, or `None` for a run without `[security]`.
pub fn check(run: &Run) -> Option<Outcome> {
    let security = run.profile.as_ref()?.security.as_ref()?;
    let mut rows = Vec::new();
    if let Some(imp) = &security.impostor {
        let probes = run.probes.as_deref().unwrap_or_default();
        let of = |identity: &str, claimed: &str| -> Vec<&Probe> {
            probes
                .iter()
                .filter(|p| p.identity == identity && p.claimed == claimed)
                .collect()
        };
        rows.push(refused(
            "security:impostor",
            &of(IMPOSTOR, &imp.claims),
            &format!("the impostor's claim to {:?}", imp.claims),
        ));
        rows.push(refused(
            "security:role",
            &of(LOADGEN, LOADGEN),
            "an emitter's certificate (\"loadgen\") as an analyzer",
        ));
        rows.push(refused(
            "security:weight",
            &of(IMPOSTOR, IMPOSTOR),
            "a HELLO past its identity's weight limit",
        ));
    }
    if let Some(r) = &security.restricted {
        rows.push(forbidden(run, &r.identity, &r.priorities));
    }
    let worst = |s: Status| rows.iter().any(|r: &Row| r.status == s);
    let status = if worst(Status::Fail) {
        Status::Fail
    } else if worst(Status::Inconclusive) {
        Status::Inconclusive
    } else if rows.is_empty() {
        return Some(Outcome::not_exercised(
            "security",
            "not exercised: [security] names neither an impostor nor restricted emitters",
        ));
    } else {
        Status::Pass
    };
    let headline = rows
        .iter()
        .map(|r| r.detail.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let mut all = vec![Row::new("security", status, "", "", headline.clone())];
    all.extend(rows);
    Some(Outcome {
        status,
        headline,
        rows: all,
    })
}

/// Each of these attempts got a REJECT: PASS; one accepted: FAIL; none answered:
/// INCONCLUSIVE.
fn refused(name: &str, probes: &[&Probe], what: &str) -> Row {
    let count = |o: ProbeOutcome| probes.iter().filter(|p| p.outcome == o).count();
    let (rejected, accepted, failed) = (
        count(ProbeOutcome::Rejected),
        count(ProbeOutcome::Accepted),
        count(ProbeOutcome::Failed),
    );
    let details = |o: Option<ProbeOutcome>| -> Vec<&str> {
        probes
            .iter()
            .filter(|p| o.is_none_or(|o| p.outcome == o))
            .map(|p| p.detail.as_str())
            .collect()
    };
    let (status, detail) = if accepted > 0 {
        (
            Status::Fail,
            format!(
                "{what} was accepted: {}",
                details(Some(ProbeOutcome::Accepted)).join("; ")
            ),
        )
    } else if rejected == 0 {
        let why = details(None);
        (
            Status::Inconclusive,
            format!(
                "{what} got no answer ({failed} failed: {}); rerun to decide",
                if why.is_empty() {
                    "no security.csv row".to_owned()
                } else {
                    why.join("; ")
                }
            ),
        )
    } else {
        let reason = details(Some(ProbeOutcome::Rejected))[0];
        (
            Status::Pass,
            format!("{what} was rejected (REJECT: {reason})"),
        )
    };
    Row::new(name, status, accepted, 0, detail).measured(accepted as f64, Some(0.0), Unit::None)
}

/// The distributor counted exactly the restricted emitters' out-of-range messages as
/// `forbidden`.
fn forbidden(run: &Run, identity: &str, priorities: &str) -> Row {
    let sent = run.restricted_sent.unwrap_or_default();
    let counted = run
        .distributor
        .dropped
        .get("forbidden")
        .copied()
        .unwrap_or(0);
    let (status, detail) = if sent.forbidden == 0 {
        (
            Status::Inconclusive,
            format!(
                "{identity} sent nothing outside {priorities} ({} inside): nothing was forbidden; give it priorities outside the range",
                sent.allowed
            ),
        )
    } else if counted == sent.forbidden {
        (
            Status::Pass,
            format!(
                "{identity} sent {} messages outside {priorities}: {counted} dropped as forbidden, exactly ({} inside the range)",
                sent.forbidden, sent.allowed
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "{identity} sent {} messages outside {priorities} but the distributor counted {counted} forbidden",
                sent.forbidden
            ),
        )
    };
    Row::new(
        "security:forbidden",
        status,
        counted,
        sent.forbidden,
        detail,
    )
    .measured(counted as f64, Some(sent.forbidden as f64), Unit::Messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Restricted;
    use runfolder::profile::ProfileView;
    use runfolder::rows::Probe;

    fn run(probe: Option<ProbeOutcome>, sent_forbidden: u64, counted: u64) -> Run {
        let text = r#"
tls = true
[security.impostor]
at = 5
claims = "a1"
[security.restricted]
identity = "low-1"
priorities = "128-255"
[security.restricted.emitters]
count = 1
"#;
        let mut run = Run {
            profile: Some(ProfileView::parse(text, std::path::Path::new("p.toml")).unwrap()),
            // The takeover as given; the role and weight attempts refused alongside it.
            probes: Some(
                probe
                    .map(|outcome| {
                        vec![
                            attempt("impostor", "a1", outcome, "why"),
                            attempt("loadgen", "loadgen", ProbeOutcome::Rejected, "role"),
                            attempt("impostor", "impostor", ProbeOutcome::Rejected, "weight"),
                        ]
                    })
                    .unwrap_or_default(),
            ),
            restricted_sent: Some(Restricted {
                allowed: 10,
                forbidden: sent_forbidden,
            }),
            ..Run::default()
        };
        run.distributor.dropped.insert("forbidden".into(), counted);
        run
    }

    fn attempt(identity: &str, claimed: &str, outcome: ProbeOutcome, detail: &str) -> Probe {
        Probe {
            ts_ns: 1,
            at_s: 5.0,
            identity: identity.into(),
            claimed: claimed.into(),
            outcome,
            detail: detail.into(),
        }
    }

    fn row<'a>(o: &'a Outcome, name: &str) -> &'a Row {
        o.rows.iter().find(|r| r.check == name).unwrap()
    }

    /// The verdict, the impostor's row's, the forbidden row's.
    fn status(run: &Run) -> (Status, Status, Status) {
        let o = check(run).unwrap();
        (
            o.status,
            row(&o, "security:impostor").status,
            o.rows.last().unwrap().status,
        )
    }

    #[test]
    fn an_emitter_certificate_as_analyzer_or_a_heavy_hello_accepted_fails() {
        use ProbeOutcome::{Accepted, Failed, Rejected};
        let with = |role: ProbeOutcome, weight: ProbeOutcome| {
            let mut r = run(Some(Rejected), 7, 7);
            r.probes = Some(vec![
                attempt("impostor", "a1", Rejected, "HELLO id \"a1\" is not ..."),
                attempt(
                    "loadgen",
                    "loadgen",
                    role,
                    "\"loadgen\" may not connect as an analyzer",
                ),
                attempt("impostor", "impostor", weight, "exceeds the limit of 10"),
            ]);
            check(&r).unwrap()
        };
        let o = with(Rejected, Rejected);
        assert_eq!(o.status, Status::Pass, "{}", o.headline);
        assert!(
            row(&o, "security:role")
                .detail
                .contains("may not connect as an analyzer")
        );
        let o = with(Accepted, Rejected);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(row(&o, "security:role").status, Status::Fail);
        assert_eq!(row(&o, "security:weight").status, Status::Pass);
        let o = with(Rejected, Accepted);
        assert_eq!(row(&o, "security:weight").status, Status::Fail);
        assert_eq!(with(Rejected, Failed).status, Status::Inconclusive);
    }

    #[test]
    fn a_rejected_impostor_and_exact_forbidden_counts_pass() {
        let pass = Status::Pass;
        assert_eq!(
            status(&run(Some(ProbeOutcome::Rejected), 7, 7)),
            (pass, pass, pass)
        );
    }

    #[test]
    fn a_takeover_or_a_miscount_fails_and_silence_is_inconclusive() {
        let (fail, pass, inc) = (Status::Fail, Status::Pass, Status::Inconclusive);
        assert_eq!(
            status(&run(Some(ProbeOutcome::Accepted), 7, 7)),
            (fail, fail, pass)
        );
        assert_eq!(
            status(&run(Some(ProbeOutcome::Rejected), 7, 6)),
            (fail, pass, fail)
        );
        assert_eq!(
            status(&run(Some(ProbeOutcome::Rejected), 7, 8)),
            (fail, pass, fail)
        );
        assert_eq!(status(&run(None, 7, 7)), (inc, inc, pass));
        assert_eq!(
            status(&run(Some(ProbeOutcome::Failed), 0, 0)),
            (inc, inc, inc)
        );
    }

    #[test]
    fn runs_without_security_get_no_check() {
        assert!(check(&Run::default()).is_none());
    }
}

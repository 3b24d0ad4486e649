//! Every arrival is an intact probe of a known emitter: zero crc failures, zero frames
//! that are not probes, zero probes naming an emitter or seq the loadgen never sent.

use super::{Outcome, Row, Status, Unit};
use crate::model::Run;

/// The integrity check.
pub fn check(run: &Run) -> Outcome {
    let received: u64 = run.analyzers.iter().map(|a| a.received).sum();
    let corrupt: u64 = run.analyzers.iter().map(|a| a.corrupt).sum();
    let non_probe: u64 = run.analyzers.iter().map(|a| a.non_probe).sum();
    let foreign = if run.emitters.is_empty() {
        0
    } else {
        run.seen.foreign
    };
    let bad = corrupt + non_probe + foreign;
    if received == 0 {
        return Outcome::not_exercised("integrity", "no arrivals to verify");
    }
    if run.settings.traffic == runfolder::Traffic::Foreign {
        return Outcome::not_exercised(
            "integrity",
            format!(
                "not exercised: foreign traffic ({received} arrivals are not probes): nothing to verify end to end"
            ),
        );
    }
    let status = if bad == 0 { Status::Pass } else { Status::Fail };
    let op = if bad == 0 { "<=" } else { ">" };
    let headline = format!(
        "{bad} bad frames {op} 0 in {received} arrivals ({corrupt} crc failures, {non_probe} not probes, {foreign} unknown (emitter, seq))"
    );
    let mut rows = vec![Row::new(
        "integrity",
        status,
        bad,
        0,
        format!(
            "{received} arrivals: {corrupt} crc failures, {non_probe} not probes, {foreign} unknown (emitter, seq)"
        ),
    )
    .measured(bad as f64, Some(0.0), Unit::Messages)];
    for a in run.analyzers.iter().filter(|a| a.corrupt + a.non_probe > 0) {
        rows.push(
            Row::new(
                format!("integrity:{}", a.id),
                Status::Fail,
                a.corrupt + a.non_probe,
                0,
                format!("{} crc failures, {} not probes", a.corrupt, a.non_probe),
            )
            .measured((a.corrupt + a.non_probe) as f64, Some(0.0), Unit::Messages),
        );
    }
    Outcome {
        status,
        headline,
        rows,
    }
}

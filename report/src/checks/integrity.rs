//! Every arrival is an intact probe of a known emitter: zero crc failures, zero frames
//! that are not probes, zero probes naming an emitter or seq the loadgen never sent.

use super::{Outcome, Row, Status};
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
    let status = match (received, bad) {
        (0, _) => Status::NotExercised,
        (_, 0) => Status::Pass,
        _ => Status::Fail,
    };
    let mut rows = vec![Row::new(
        "integrity",
        status,
        bad,
        0,
        format!(
            "{received} arrivals: {corrupt} crc failures, {non_probe} not probes, {foreign} unknown (emitter, seq)"
        ),
    )];
    for a in run.analyzers.iter().filter(|a| a.corrupt + a.non_probe > 0) {
        rows.push(Row::new(
            format!("integrity:{}", a.id),
            Status::Fail,
            a.corrupt + a.non_probe,
            0,
            format!("{} crc failures, {} not probes", a.corrupt, a.non_probe),
        ));
    }
    Outcome { status, rows }
}

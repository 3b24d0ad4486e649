//! Latency histograms as the run folder keeps them: HdrHistogram at 3 significant digits
//! (mergeable, exact enough for percentiles), stored in a [`Latency`] row with the
//! histogram itself serialized (V2 + deflate, lower-case hex) so readers can merge rows.

use crate::rows::{Latency, LatencyClass};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

/// A latency histogram could not be made or written.
#[derive(Debug, thiserror::Error)]
#[error("latency histogram: {0}")]
pub struct HistogramError(String);

/// An empty histogram of µs, 3 significant digits, growing as needed.
pub fn histogram() -> Result<Histogram<u64>, HistogramError> {
    let mut h = Histogram::new(3).map_err(|e| HistogramError(format!("{e:?}")))?;
    h.auto(true);
    Ok(h)
}

/// The row of `h`: its percentiles and the histogram itself.
pub fn row(class: LatencyClass, h: &Histogram<u64>) -> Result<Latency, HistogramError> {
    let mut raw = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut raw)
        .map_err(|e| HistogramError(format!("{e:?}")))?;
    Ok(Latency {
        priority: class,
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        histogram: hex(&raw),
    })
}

/// Lower-case hex, the encoding of the `histogram` column.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_holds_the_percentiles_and_the_histogram() {
        let mut h = histogram().unwrap();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let r = row(LatencyClass::All, &h).unwrap();
        assert_eq!((r.count, r.p50_us, r.max_us), (1000, 500, 1000));
        assert!(r.p99_us >= 990 && r.p99_us <= 991, "{}", r.p99_us);
        assert!(r.histogram.len() > 16 && r.histogram.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

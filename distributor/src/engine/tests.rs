//! The engine's state machine, driven with instants of the tests' choosing.

use super::*;
use crate::accounting::RejectKind;
use crate::engine::admission::{Offer, Source};
use bytes::Bytes;
use protocol::log::LogFrame;
use std::collections::VecDeque;
use std::time::Instant;

fn at(ns: u64) -> Now {
    Now {
        instant: Instant::now(),
        ns,
    }
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        routing: Routing::Smooth,
        seed: 0,
        queue_capacity: 1000,
        overflow: Overflow::Backpressure,
        when_full: WhenFull::Spill,
        max_queued_bytes: 1 << 30,
        ack_window: 16,
        hang_timeout: Duration::from_secs(5),
        holding_capacity: 10,
        retry: RetrySchedule::new(3),
        pinned: HashMap::new(),
        max_analyzers: 2,
        max_weight: 100.0,
        forget_after: Duration::from_secs(60),
        max_remembered_ids: 1024,
    })
}

fn hello(id: &str) -> Hello {
    Hello {
        version: 1,
        acks: false,
        compression: None,
        weight: 1.0,
        id: id.into(),
    }
}

#[test]
fn waiting_frames_stop_pinning_the_read_buffer() {
    let mut c = engine();
    c.register(&hello("a"), at(1)).unwrap();
    let buffer = Bytes::from(vec![7u8; 300 * 10]);
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    let shared = |c: &Engine| -> Vec<bool> {
        let q = &c.live[0].queues;
        q.iter()
            .map(|f| range.contains(&(f.payload.as_ptr() as usize)))
            .collect()
    };
    let t0 = 1_000_000_000;
    let mut first: VecDeque<LogFrame> = (0..200)
        .map(|i| LogFrame {
            priority: (i % 2) as u8,
            payload: buffer.slice(i * 10..i * 10 + 10),
        })
        .collect();
    assert_eq!(
        c.offer(&mut first, at(t0), &Source::default()),
        Offer::Taken
    );
    let mut later: VecDeque<LogFrame> = (200..300)
        .map(|i| LogFrame {
            priority: (i % 2) as u8,
            payload: buffer.slice(i * 10..i * 10 + 10),
        })
        .collect();
    assert_eq!(
        c.offer(&mut later, at(t0 + COMPACT_AFTER_NS), &Source::default()),
        Offer::Taken
    );
    assert!(
        shared(&c).iter().all(|s| *s),
        "queued frames start zero-copy"
    );
    // 100 ms after the first batch, only it has waited long enough to be compacted.
    c.tick(at(t0 + COMPACT_AFTER_NS + 1));
    assert_eq!(shared(&c).iter().filter(|s| !**s).count(), 200);
    c.tick(at(t0 + 3 * COMPACT_AFTER_NS));
    assert!(
        shared(&c).iter().all(|s| !*s),
        "every waiting frame owns its bytes"
    );
    let payloads: Vec<u8> = std::iter::from_fn(|| c.live[0].queues.pop())
        .map(|f| f.payload[0])
        .collect();
    assert_eq!(payloads, vec![7u8; 300], "bytes unchanged");
}

#[test]
fn analyzer_and_weight_limits_reject_with_the_limit() {
    let mut c = engine();
    let heavy = Hello {
        weight: 1000.0,
        ..hello("h")
    };
    let err = c.register(&heavy, at(1)).unwrap_err();
    assert!(
        matches!(err, RejectReason::WeightTooLarge { max: 100.0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--max-weight"));
    c.register(&hello("a"), at(2)).unwrap();
    c.register(&hello("b"), at(3)).unwrap();
    let err = c.register(&hello("c"), at(4)).unwrap_err();
    assert!(err.to_string().contains("--max-analyzers"), "{err}");
    // A live id may still come back (replacement), the limit notwithstanding.
    c.register(&hello("a"), at(5)).unwrap();
    let t = &c.totals;
    assert_eq!(t.rejected_hellos[RejectKind::WeightTooLarge as usize], 1);
    assert_eq!(t.rejected_hellos[RejectKind::TooManyAnalyzers as usize], 1);
}

#[test]
fn ids_gone_long_enough_are_forgotten_but_still_counted() {
    let mut c = engine();
    let t0 = Instant::now();
    let now = |secs: u64| Now {
        instant: t0 + Duration::from_secs(secs),
        ns: secs,
    };
    for (i, id) in ["x1", "x2"].iter().enumerate() {
        let r = c.register(&hello(id), now(i as u64)).unwrap();
        let mut batch: VecDeque<LogFrame> = (0..3)
            .map(|_| LogFrame {
                priority: 0,
                payload: Bytes::from_static(b"p"),
            })
            .collect();
        c.offer(&mut batch, now(i as u64), &Source::default());
        let mut out = Vec::new();
        c.take_batch(r.key, 10, 1 << 20, &mut out, now(i as u64));
        c.wrote(r.key, out.len(), true, now(i as u64));
        c.fail(r.key, &SessionEnd::Closed, now(i as u64));
    }
    let before = c.snapshot(now(2)).stats_rows()[0].clone();
    c.tick(now(60));
    let s = c.snapshot(now(60));
    assert_eq!(s.analyzers.len(), 1, "x1 gone 60 s: forgotten; x2 not yet");
    assert_eq!(s.forgotten_ids, 1);
    c.tick(now(61));
    let s = c.snapshot(now(61));
    assert!(s.analyzers.is_empty());
    let after = s.stats_rows()[0].clone();
    assert_eq!(
        (after.routed, after.written, after.delivered),
        (before.routed, before.written, before.delivered)
    );
    assert!(
        crate::server::metrics::render(s.clone(), Default::default())
            .contains("distributor_forgotten_analyzers_total 2")
    );
    assert!(
        !crate::server::metrics::render(s.clone(), Default::default()).contains("analyzer=\"x1\"")
    );
}

#[test]
fn queued_bytes_cap_new_frames_and_come_back_to_zero() {
    let mut c = Engine::new(EngineConfig {
        overflow: Overflow::Drop,
        max_queued_bytes: 3 * (8 + frame::FRAME_OVERHEAD),
        ..engine().cfg
    });
    let a = c.register(&hello("a"), at(1)).unwrap();
    let mut batch: VecDeque<LogFrame> = (0..5)
        .map(|_| LogFrame {
            priority: 0,
            payload: Bytes::from(vec![1u8; 8]),
        })
        .collect();
    assert_eq!(c.offer(&mut batch, at(2), &Source::default()), Offer::Taken);
    assert_eq!(c.snapshot(at(2)).queued_bytes, 3 * 72);
    assert_eq!(c.totals.dropped_by(DropReason::BytesFull), 2);
    // In flight still counts; written (best effort) releases.
    let mut out = Vec::new();
    c.take_batch(a.key, 10, 1 << 20, &mut out, at(3));
    assert_eq!(c.snapshot(at(3)).queued_bytes, 3 * 72);
    c.wrote(a.key, 3, true, at(4));
    assert_eq!(c.snapshot(at(4)).queued_bytes, 0);
    assert_eq!(c.totals.delivered, 3);
}

#[test]
fn accounting_holds_through_holding_failure_and_drops() {
    let mut c = engine();
    let frames = |n: usize| -> VecDeque<LogFrame> {
        (0..n)
            .map(|i| LogFrame {
                priority: (i % 3) as u8,
                payload: Bytes::from(vec![1u8; 8]),
            })
            .collect()
    };
    // No analyzer: 10 held, the rest wait (backpressure).
    let mut batch = frames(15);
    assert_eq!(
        c.offer(&mut batch, at(1), &Source::default()),
        Offer::Blocked
    );
    assert_eq!(
        (c.totals.received, c.placement.held(), batch.len()),
        (10, 10, 5)
    );
    // An analyzer arrives: the held frames move to it, the rest follow.
    let a = c.register(&hello("a"), at(2)).unwrap();
    assert_eq!(c.offer(&mut batch, at(3), &Source::default()), Offer::Taken);
    assert_eq!(c.in_system(), 15);
    // It takes 4 (best effort) and fails: its other 11 are held until "b" comes.
    let mut out = Vec::new();
    c.take_batch(a.key, 4, 1 << 20, &mut out, at(4)).unwrap();
    c.wrote(a.key, 4, true, at(4));
    assert_eq!(c.fail(a.key, &SessionEnd::Closed, at(5)), Some(11));
    assert_eq!(c.placement.held(), 11);
    c.register(&hello("b"), at(6)).unwrap();
    assert_eq!(c.placement.held(), 0);
    // At the drain deadline, what is still queued for "b" is counted as dropped.
    let left = c.abandon(at(7));
    let t = &c.totals;
    assert_eq!(left, (11, 0));
    assert_eq!(t.received, t.delivered + t.dropped_total());
    assert_eq!((t.delivered, t.dropped_by(DropReason::Shutdown)), (4, 11));
}

#[test]
fn a_frame_queued_after_a_dispatch_is_never_stamped_before_it() {
    // Clocks are read outside the lock: an emitter's reading can be older than the
    // dispatch stamp of a batch taken before its frames went in.
    let mut c = engine();
    let a = c.register(&hello("a"), at(1)).unwrap();
    let frame = |priority: u8| -> VecDeque<LogFrame> {
        [LogFrame {
            priority,
            payload: Bytes::from_static(b"x"),
        }]
        .into()
    };
    assert_eq!(
        c.offer(&mut frame(200), at(10), &Source::default()),
        Offer::Taken
    );
    let mut out = Vec::new();
    assert_eq!(c.take_batch(a.key, 10, 1 << 20, &mut out, at(20)), Some(20));
    assert_eq!(out.len(), 1);
    // Read at 15, placed after the dispatch at 20.
    assert_eq!(
        c.offer(&mut frame(0), at(15), &Source::default()),
        Offer::Taken
    );
    out.clear();
    // And a writer's reading older than that placement.
    assert_eq!(c.take_batch(a.key, 10, 1 << 20, &mut out, at(18)), Some(20));
    assert_eq!(
        out[0].queued_ns, 20,
        "not 15: it went in after the dispatch at 20"
    );
}

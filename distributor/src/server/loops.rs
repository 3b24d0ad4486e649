//! The distributor's periodic work: the tick (hang detection, holding-queue retries,
//! compaction, forgetting ids), the frame-timeout sweep over the emitter connections, the
//! loader that reads frames waiting on disk back as room frees, and the per-second stats
//! CSV.

use super::Shared;
use crate::engine::Now;
use crate::journal::Journal;
use runfolder::TableWriter;
use runfolder::rows::Stats;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hang detection and holding-queue retries, ten times per hang timeout (at most every
/// 100 ms).
pub(super) async fn tick_loop(
    shared: Arc<Shared>,
    hang_timeout: Duration,
    stop: CancellationToken,
) {
    let period = (hang_timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        shared.with(|c| c.tick(Now::read()));
    }
}

/// Closes the emitter connections whose partial frame is older than `frame_timeout`, four
/// times per timeout (at most every second), so a frame is cut within 1.25 timeouts.
pub(super) async fn frame_timeout_loop(
    conns: Arc<super::conns::Conns>,
    frame_timeout: Duration,
    stop: CancellationToken,
) {
    let period = (frame_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        conns.sweep(std::time::Instant::now(), frame_timeout);
    }
}

/// Frames read back from the journal per round: enough to refill queues quickly, few
/// enough that one round's reads take milliseconds.
const LOAD_BATCH: usize = 4096;

/// Reads frames waiting on disk (for room, or recovered at start) back into the queues as
/// room frees, most urgent priority first. Woken by room freeing; also looks every 20 ms,
/// as a record being written at that moment is readable only once it is.
pub(super) async fn load_loop(shared: Arc<Shared>, journal: Arc<Journal>, stop: CancellationToken) {
    loop {
        let room = shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        // Every record can be read back: from the files, or from memory while it is not
        // written yet (as while the disk is full).
        let plan = shared.with(|c| c.plan_load(LOAD_BATCH, crate::journal::Loc::MAX));
        let Some((priority, locs)) = plan else {
            if !wait_for_room(room, &stop).await {
                return;
            }
            continue;
        };
        let read = {
            let (journal, locs) = (Arc::clone(&journal), locs.clone());
            tokio::task::spawn_blocking(move || journal.read(&locs)).await
        };
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading frames waiting on disk failed");
                locs.iter()
                    .map(|_| Err(crate::journal::JournalReadError::Interrupted))
                    .collect()
            }
        };
        let placed = shared.with(|c| c.load(priority, &locs, read, Now::read()));
        // Room by count is not room for the router's choice (`--when-full strict`): when
        // nothing found a place, wait instead of reading the same frames again at once.
        if placed == 0 && !wait_for_room(room, &stop).await {
            return;
        }
    }
}

/// Waits for room to free (or 20 ms); false when stopping.
async fn wait_for_room(
    room: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = room => true,
        _ = tokio::time::sleep(Duration::from_millis(20)) => true,
        _ = stop.cancelled() => false,
    }
}

/// Writes the stats CSV: rows every second and once more at the end.
pub(super) async fn stats_loop(
    shared: Arc<Shared>,
    mut out: TableWriter<Stats>,
    stop: CancellationToken,
) -> Result<(), runfolder::Error> {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        let last = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.cancelled() => true,
        };
        let snapshot = shared.snapshot();
        // Small writes once a second; not worth a blocking-pool hop.
        for row in snapshot.stats_rows() {
            out.write(&row)?;
        }
        out.flush()?;
        if last {
            return Ok(());
        }
    }
}

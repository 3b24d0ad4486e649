//! Live progress: an indicatif bar on a terminal; plain status lines every 5 s otherwise
//! (indicatif draws nothing when stderr is not a terminal).

use crate::Config;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Counters every emitter updates per batch.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages written.
    pub sent: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Write errors.
    pub errors: AtomicU64,
    /// Reconnections.
    pub reconnects: AtomicU64,
    /// Messages never sent (due while disconnected).
    pub unsent: AtomicU64,
    /// Emitters connected now.
    pub connected: AtomicU64,
    /// The latest lag behind schedule seen by any emitter, in µs.
    pub lag_us: AtomicU64,
}

impl Counters {
    /// One status line.
    pub fn line(&self, elapsed: Duration, total: Duration) -> String {
        let sent = self.sent.load(Relaxed);
        let rate = sent as f64 / elapsed.as_secs_f64().max(1e-3);
        format!(
            "{:.0}/{:.0}s sent {sent} ({rate:.0} msg/s, {:.1} MiB) connected {} errors {} reconnects {} unsent {} lag {:.1} ms",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            self.bytes.load(Relaxed) as f64 / (1 << 20) as f64,
            self.connected.load(Relaxed),
            self.errors.load(Relaxed),
            self.reconnects.load(Relaxed),
            self.unsent.load(Relaxed),
            self.lag_us.load(Relaxed) as f64 / 1000.0,
        )
    }
}

/// The running display.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
    total: Duration,
}

impl Progress {
    /// Starts updating from `counters`.
    pub fn start(counters: Arc<Counters>, config: &Config, started: Instant) -> Self {
        let total = Duration::from_secs_f64(config.duration);
        let bar = ProgressBar::new(total.as_millis() as u64);
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        let plain = bar.is_hidden();
        let (b, c) = (bar.clone(), Arc::clone(&counters));
        let task = tokio::spawn(async move {
            let period = if plain {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(200)
            };
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let elapsed = started.elapsed();
                if plain {
                    println!("loadgen: {}", c.line(elapsed, total));
                } else {
                    b.set_position(elapsed.as_millis() as u64);
                    b.set_message(c.line(elapsed, total));
                }
            }
        });
        Self {
            bar,
            task,
            counters,
            total,
        }
    }

    /// Stops the display and prints the final line.
    pub fn finish(self, elapsed: Duration) {
        self.task.abort();
        self.bar.finish_and_clear();
        println!("loadgen: done: {}", self.counters.line(elapsed, self.total));
    }
}

//! What a run shows while it goes: on a terminal a live line (indicatif) with the elapsed
//! and total time, frames received and delivered per second, queued frames, live analyzers
//! and the next chaos event; off a terminal a plain status line every 5 s. Both are driven
//! by the distributor's stats, once a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runfolder::rows::Stats;
use std::time::{Duration, Instant};

/// The run's display.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    total_s: f64,
    last: Option<Stats>,
    last_line: Instant,
}

/// The next chaos event, for the display: seconds into the run, what, on whom.
pub type NextEvent<'a> = Option<(f64, &'a str, &'a [String])>;

impl Progress {
    /// A display for a run of `total_s` seconds: live on a terminal, plain lines otherwise.
    pub fn new(total_s: f64) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_s.ceil() as u64),
                ProgressDrawTarget::stdout_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos:>4}/{len} s {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            total_s,
            last: None,
            last_line: Instant::now(),
        }
    }

    /// Prints a line above the live display (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }

    /// Updates the display with the distributor's latest totals.
    pub fn update(&mut self, elapsed: Duration, totals: Option<Stats>, next: NextEvent<'_>) {
        let now = Instant::now();
        let Some(t) = totals else { return };
        // Rates from the previous sample of the same incarnation (counters restart with a
        // new distributor process).
        let rates = match &self.last {
            Some(prev) if t.received >= prev.received && t.ts_ns > prev.ts_ns => {
                let dt = (t.ts_ns - prev.ts_ns) as f64 / 1e9;
                Some((
                    (t.received - prev.received) as f64 / dt,
                    t.delivered.saturating_sub(prev.delivered) as f64 / dt,
                ))
            }
            _ => None,
        };
        let next = match next {
            Some((at, action, targets)) => {
                let who: String = targets.iter().map(|t| format!(" {t}")).collect();
                format!("next: {action}{who} at {at:.0} s")
            }
            None => "no more chaos".to_owned(),
        };
        let (rin, rout) = rates.map_or(("-".into(), "-".into()), |(i, o)| {
            (format!("{i:.0}/s"), format!("{o:.0}/s"))
        });
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(format!(
                    "in {rin} out {rout} queued {} live {} | {next}",
                    t.queued, t.live
                ));
            }
            None if now.duration_since(self.last_line) >= Duration::from_secs(5) => {
                self.last_line = now;
                println!(
                    "harness: {:>5.0}/{:.0} s received {} ({rin}) delivered {} ({rout}) queued {} holding {} live analyzers {}; {next}",
                    elapsed.as_secs_f64(),
                    self.total_s,
                    t.received,
                    t.delivered,
                    t.queued,
                    t.holding,
                    t.live,
                );
            }
            None => {}
        }
        self.last = Some(t);
    }

    /// Ends the live display.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

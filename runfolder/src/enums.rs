//! The closed sets shared by settings, command lines and files. Each is a clap `ValueEnum`
//! and a serde enum with the same spelling, and displays as written.

use serde::{Deserialize, Serialize};

/// Gives a closed set its `ALL` (declaration order), `as_str` (the one spelling used in
/// settings, flags, files, metric labels and logs) and a `Display` that writes it; every
/// closed set of the workspace goes through it.
#[macro_export]
macro_rules! spelled {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// As written in settings, flags and files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How the distributor chooses an analyzer for a frame.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// A random draw in proportion to weight.
    #[default]
    Random,
    /// Deterministic, exact proportions (earliest deadline first).
    Smooth,
}
spelled!(Routing { Random => "random", Smooth => "smooth" });

/// What the distributor does with a frame when every live analyzer's queue for its
/// priority is full.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Stop reading that emitter until room frees; nothing is dropped.
    #[default]
    Backpressure,
    /// Drop the frame and count it.
    Drop,
}
spelled!(Overflow { Backpressure => "backpressure", Drop => "drop" });

/// What the distributor's router does when the analyzer it chose by weight has no room at a
/// frame's priority.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Route it to another analyzer with room, again by weight (work-conserving: no frame
    /// waits while an analyzer could take it, at the cost of the shares drifting while an
    /// analyzer falls behind); counted as spilled.
    #[default]
    Spill,
    /// Never route away from the weighted choice: the overflow policy applies (shares hold
    /// whatever the analyzers' speeds).
    Strict,
}
spelled!(WhenFull { Spill => "spill", Strict => "strict" });

/// When the distributor's journal calls fdatasync, which decides what an ACK to an
/// emitter promises.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// Group commit every `--fsync-interval-ms`: ACKs wait for the flush that covers them.
    #[default]
    Interval,
    /// A flush as soon as anything was written: lowest latency per ACK, most flushes.
    Always,
    /// Never: secured once written to the file. Survives the process dying, not the
    /// machine.
    Never,
}
spelled!(Fsync { Interval => "interval", Always => "always", Never => "never" });

/// How an analyzer sink logs arrivals.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LogMode {
    /// A row per arrival (`arrivals-<id>.csv`).
    #[default]
    Full,
    /// Per-second aggregates plus exact seq ranges (`summary-<id>.csv` and friends).
    Summary,
}
spelled!(LogMode { Full => "full", Summary => "summary" });

/// How an emitter chooses each message's priority.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PriorityMode {
    /// Always one fixed priority.
    #[default]
    Single,
    /// Uniform over the range.
    Random,
    /// Most traffic on the most urgent levels of the range, a tail over the rest.
    Weighted,
    /// Round robin over the range.
    Cyclic,
}
spelled!(PriorityMode {
    Single => "single",
    Random => "random",
    Weighted => "weighted",
    Cyclic => "cyclic",
});

/// A codec of the links (PROTOCOL.md section 7), as settings and files spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// The LZ4 frame format: fast, a modest ratio.
    Lz4,
    /// Zstandard: a higher ratio for more CPU.
    Zstd,
}
spelled!(Compression { Lz4 => "lz4", Zstd => "zstd" });

/// What a loadgen puts in each probe's filler (PROTOCOL.md section 4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// Random bytes: incompressible.
    #[default]
    Random,
    /// Lines like people's logs (timestamps, addresses, paths, statuses, user agents,
    /// words): what compression meets in production.
    Text,
}
spelled!(Payload { Random => "random", Text => "text" });

/// What a loadgen speaks to its target.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// LOG frames with binary probes, to the emitter port (PROTOCOL.md sections 1 and 5).
    #[default]
    Log,
    /// RFC 5424 syslog lines ending in text probes, to a syslog port (section 8).
    Syslog,
}
spelled!(Format { Log => "log", Syslog => "syslog" });

/// How syslog messages are framed on TCP (RFC 6587).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyslogFraming {
    /// Octet counting: `MSG-LEN SP SYSLOG-MSG`.
    #[default]
    Octet,
    /// Non-transparent framing: `SYSLOG-MSG LF`.
    Lf,
}
spelled!(SyslogFraming { Octet => "octet", Lf => "lf" });

/// What a chaos event of a profile does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosAction {
    /// SIGKILL an analyzer.
    Kill,
    /// Start an analyzer that is down (after `kill`).
    Start,
    /// SIGSTOP an analyzer: it hangs.
    Stop,
    /// SIGCONT a stopped analyzer.
    Cont,
    /// SIGUSR1: the analyzer runs at its `slow_capacity`.
    Slow,
    /// SIGUSR2: back to its normal capacity.
    Fast,
    /// SIGTERM the distributor, let it drain, start it again.
    RestartDistributor,
    /// SIGKILL the distributor (a crash: what it holds is gone), start it again on the same
    /// ports.
    KillDistributor,
}

impl ChaosAction {
    /// Whether it acts on the distributor (and takes no targets).
    pub fn on_distributor(self) -> bool {
        matches!(
            self,
            ChaosAction::RestartDistributor | ChaosAction::KillDistributor
        )
    }
}
spelled!(ChaosAction {
    Kill => "kill",
    Start => "start",
    Stop => "stop",
    Cont => "cont",
    Slow => "slow",
    Fast => "fast",
    RestartDistributor => "restart-distributor",
    KillDistributor => "kill-distributor",
});

/// How the distributor answered an impostor (`security.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOutcome {
    /// A REJECT: the takeover was refused.
    Rejected,
    /// A session: the impostor took the id over.
    Accepted,
    /// Neither (no connection, no answer in time): the probe says nothing.
    Failed,
}
spelled!(ProbeOutcome {
    Rejected => "rejected",
    Accepted => "accepted",
    Failed => "failed",
});

/// What the analyzers receive: the loadgen's probes, or another emitter's payloads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    /// Probes (every payload verifiable end to end).
    #[default]
    Probes,
    /// Payloads of other emitters (the original system's, say): not verifiable, carrying
    /// no emitter, seq or send stamp.
    Foreign,
}
spelled!(Traffic { Probes => "probes", Foreign => "foreign" });

/// A check's verdict, as the report prints it and writes it to `summary.csv`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The property held.
    Pass,
    /// The property was violated.
    Fail,
    /// The run gave the check nothing to look at.
    NotExercised,
    /// Too little data to decide; the detail says how much would do.
    Inconclusive,
    /// A figure with nothing to compare it with (no limit set): shown, never judged, never
    /// counted as a pass.
    Info,
}
spelled!(Status {
    Pass => "PASS",
    Fail => "FAIL",
    NotExercised => "NOT_EXERCISED",
    Inconclusive => "INCONCLUSIVE",
    Info => "INFO",
});

impl Status {
    /// The worst of two: FAIL over INCONCLUSIVE over PASS over INFO and NOT_EXERCISED.
    pub fn worst(self, other: Status) -> Status {
        let rank = |s: Status| match s {
            Status::Fail => 3,
            Status::Inconclusive => 2,
            Status::Pass => 1,
            Status::NotExercised | Status::Info => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The unit of a check's numbers in `summary.csv` and `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Unit {
    /// No unit (a statistic).
    #[default]
    #[serde(rename = "")]
    None,
    /// A count of messages (frames).
    #[serde(rename = "messages")]
    Messages,
    /// Percent.
    #[serde(rename = "%")]
    Percent,
    /// A fraction of all arrivals, 0 to 1.
    #[serde(rename = "share")]
    Share,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Ms,
    /// Messages per second.
    #[serde(rename = "msg/s")]
    MsgPerS,
    /// CPU microseconds per message.
    #[serde(rename = "µs/msg")]
    UsPerMsg,
    /// Mebibytes.
    #[serde(rename = "MiB")]
    Mib,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
}
spelled!(Unit {
    None => "",
    Messages => "messages",
    Percent => "%",
    Share => "share",
    Ms => "ms",
    MsgPerS => "msg/s",
    UsPerMsg => "µs/msg",
    Mib => "MiB",
    Seconds => "s",
});

/// Which way a compared metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Better {
    /// More is better (throughput).
    Higher,
    /// Less is better (latency, CPU, memory, losses).
    Lower,
}
spelled!(Better { Higher => "higher", Lower => "lower" });

/// How `report compare` judged a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Welch's t-test on the difference of means.
    Welch,
    /// A percentile bootstrap of the difference of means.
    Bootstrap,
    /// Fewer than two samples on a side: the tolerance alone, no confidence.
    Single,
    /// A count where any new occurrence is a regression (losses, drops).
    Count,
}
spelled!(Method {
    Welch => "welch",
    Bootstrap => "bootstrap",
    Single => "single",
    Count => "count",
});

/// `report compare`'s verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Worse by more than the tolerance, with the confidence asked for.
    #[serde(rename = "regression")]
    Regression,
    /// Better by more than the tolerance, with the confidence asked for.
    #[serde(rename = "improvement")]
    Improvement,
    /// No change beyond the tolerance at that confidence.
    #[serde(rename = "no change")]
    NoChange,
    /// Too noisy to judge (coefficient of variation above 0.1 and no change larger than
    /// the noise itself); never fails the gate.
    #[serde(rename = "erratic")]
    Erratic,
}
spelled!(Verdict {
    Regression => "regression",
    Improvement => "improvement",
    NoChange => "no change",
    Erratic => "erratic",
});

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    /// serde, clap and `Display` spell every value the same way.
    fn same_spelling<T>(all: &[T])
    where
        T: clap::ValueEnum + Serialize + for<'de> Deserialize<'de> + std::fmt::Display + PartialEq,
        T: std::fmt::Debug,
    {
        for v in all {
            let text = v.to_string();
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
            assert_eq!(&T::from_str(&text, false).unwrap(), v);
        }
    }

    /// serde and `Display` spell every value the same way (types that are not clap values).
    fn json_spelling<T>(all: &[T])
    where
        T: Serialize + for<'de> Deserialize<'de> + std::fmt::Display + PartialEq,
        T: std::fmt::Debug,
    {
        for v in all {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
        }
    }

    #[test]
    fn spellings_agree() {
        same_spelling(Routing::ALL);
        same_spelling(Overflow::ALL);
        same_spelling(WhenFull::ALL);
        same_spelling(Fsync::ALL);
        same_spelling(LogMode::ALL);
        same_spelling(PriorityMode::ALL);
        same_spelling(ChaosAction::ALL);
        same_spelling(Status::ALL);
        same_spelling(Traffic::ALL);
        json_spelling(Unit::ALL);
        json_spelling(Verdict::ALL);
        json_spelling(Method::ALL);
        json_spelling(Better::ALL);
        assert_eq!(ChaosAction::value_variants().len(), ChaosAction::ALL.len());
    }

    #[test]
    fn unknown_values_are_refused_with_the_choices() {
        let err = serde_json::from_str::<Routing>("\"rr\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rr") && err.contains("smooth"), "{err}");
    }
}

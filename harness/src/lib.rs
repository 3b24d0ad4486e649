//! The profile runner behind `just basic`, `just throughput` and `just chaos`.
//!
//! # Layout
//!
//! - [`profile`]: the profile format: each component's section deserializes into that
//!   component's own settings; cross-cutting rules (ids, chaos targets) checked here.
//! - [`procs`]: the shipped binaries as child processes, signals, `/proc` sampling.
//! - [`run`]: one run end to end: start, load, chaos schedule, stop, report.
//! - [`progress`]: the live display on a terminal, status lines otherwise.
//! - [`bench`](mod@bench): the end-to-end performance suite behind `just bench`.
//! - [`prometheus`]: a real Prometheus beside a run (`--prometheus`), and its alerts.
//! - [`tls`]: a `tls = true` run's certificates, access file and impostor.
//! - [`cli`]: the binary's command line (also read by the `dist` tool for man pages).
//!
//! The harness starts the `distributor`, `analyzer-sink`, `loadgen` and `report` binaries
//! found beside its own executable (`cargo build --release --workspace` builds them all),
//! so a run measures what users deploy. It reads the run's progress from the distributor's
//! stats CSV and writes its own files (events, resources, manifest) through the run folder's
//! schema (`runfolder`).

pub mod bench;
pub mod cli;
pub mod procs;
pub mod profile;
pub mod progress;
pub mod prometheus;
pub mod run;
pub mod tls;

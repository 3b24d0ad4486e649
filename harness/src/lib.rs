//! The profile runner behind `just basic`, `just throughput` and `just chaos`.
//!
//! # Layout
//!
//! - [`profile`]: the profile format, checked field by field.
//! - [`procs`]: the components as child processes of this executable, one role each, and
//!   `/proc` sampling.
//! - [`run`]: one run end to end: start, load, chaos schedule, stop, report.
//! - [`bench`]: the end-to-end performance suite behind `just bench`.
//!
//! The harness executable plays every role (`harness distributor ...`, `harness
//! analyzer-sink ...`, `harness loadgen ...`, `harness report ...`), so `cargo run -p
//! harness` builds everything a run needs.

pub mod bench;
pub mod procs;
pub mod profile;
pub mod run;

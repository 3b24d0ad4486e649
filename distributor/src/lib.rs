//! The log distributor: takes LOG frames from many emitters over TCP, routes each to one
//! live analyzer in proportion to weight, keeps 256 strict priority levels per analyzer,
//! survives analyzers failing, hanging and coming back, and accounts for every frame.
//!
//! # Layout
//!
//! - [`cli`]: the command line (flags over an optional `--config` file).
//! - [`config`]: settings from a TOML file and flags, checked at load time.
//! - [`router`]: weighted choice among live analyzers: O(1) random, O(log n) smooth.
//! - [`frame`]: a frame inside the distributor, and compaction of frames that wait.
//! - [`queues`]: the 256 strict-priority FIFO queues of one analyzer.
//! - [`health`]: hang detection and the retry schedule, pure and clock-injected.
//! - [`session`]: one live analyzer session: queues, frames in flight, ACKs; why
//!   sessions end and HELLOs are refused.
//! - [`holding`]: frames no analyzer can take yet.
//! - [`secured`]: which frames of an acknowledged emitter connection are secured.
//! - [`journal`]: the disk journal of `--data-dir`: segments, group commit, done marks,
//!   recovery at start, the lock.
//! - [`spill`]: frames waiting in the journal instead of memory.
//! - [`access`]: the access file: priorities per emitter identity, analyzers allowed.
//! - [`core`]: the state behind one mutex: routing over the sessions, the holding queue,
//!   accounting. Every method takes the time as a [`core::Now`].
//! - [`stats`]: counters, the Prometheus text and the per-second stats CSV.
//! - [`waits`]: the queue-wait histogram per priority class, recorded by the writers.
//! - [`server`]: the I/O: emitter connections, analyzer sessions, `/metrics`, shutdown.
//!
//! # Data flow
//!
//! An emitter connection reads up to 64 KiB at a time, decodes every whole LOG frame in it
//! (payloads stay slices of the read buffer) and offers the batch to the core, which picks
//! an analyzer per frame and queues it at its priority. When the chosen queue is full the
//! frame goes to another live analyzer with room; when none has room, `backpressure` stops
//! reading that connection until room frees, `drop` drops and counts it. With no analyzer
//! live, frames wait in the holding queue. Each analyzer session has one writer that takes a
//! batch (most urgent first, FIFO within a level) and writes it with few syscalls, and one
//! reader for ACKs. A session that closes, errors, breaks the protocol or hangs leaves the
//! routing set at once and its queued and unacknowledged frames are routed again.
//!
//! With TLS configured every accepted connection first runs its handshake in its own task
//! (a client certificate, under mutual TLS, gives the peer's identity); then the same code
//! serves it through [`runner::net::Stream`]. An emitter connection may open with an EMITTER
//! HELLO: its frames then carry [`secured::Ticket`]s and the connection writes ACKs back as
//! the secured prefix grows; [`access`] rules filter its priorities.
//!
//! With `--data-dir` the core appends every frame it takes to the [`journal`] (a copy into
//! a buffer) and gives its ACK ticket to the journal's writer thread, which secures it after
//! the fdatasync that covers it. Frames carry a [`journal::Mark`] that records them done
//! when they are delivered or dropped. A frame that finds no room leaves memory and waits
//! in the journal ([`spill`]); a loader task reads such frames back, most urgent first, as
//! room frees. At start the journal hands back every record not done, which waits the
//! same way.

pub mod access;
pub mod cli;
pub mod config;
pub mod core;
pub mod frame;
pub mod health;
pub mod holding;
pub mod journal;
pub mod queues;
pub mod router;
pub mod secured;
pub mod server;
pub mod session;
pub mod spill;
pub mod stats;
pub mod waits;

pub use config::Config;
pub use server::{Listeners, run};

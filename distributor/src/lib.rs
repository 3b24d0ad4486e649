//! The log distributor: takes LOG frames from many emitters over TCP, routes each to one
//! live analyzer in proportion to weight, keeps 256 strict priority levels per analyzer,
//! survives analyzers failing, hanging and coming back, and accounts for every frame.
//!
//! # Layout
//!
//! The modules are layers; each uses only those above it in this list:
//!
//! - [`accounting`]: the counters, the closed sets they are kept by (drop, close, failure
//!   and reject reasons), the queue-wait histogram, and a [`Snapshot`] of them all with its
//!   stats CSV rows.
//! - `secured`: which frames of an acknowledged emitter connection are secured (the ACK
//!   tickets).
//! - `journal`: the disk journal of `--data-dir`: segments, group commit, done marks,
//!   recovery at start, the lock.
//! - `access`: the access file: priorities per emitter identity, analyzers allowed.
//! - `engine`: the state machine behind one lock: the one admission path, routing by
//!   weight, the analyzer sessions with their priority queues, the holding queue and the
//!   frames waiting on disk, the clock it is given.
//! - [`config`] and [`cli`]: every setting, declared once for the flags, the config file
//!   and the README's table; `main` maps what [`run`] returns to an exit code.
//! - `server`: the I/O: the accept loops, emitter connections, analyzer sessions, the
//!   HTTP endpoint (`/metrics` in OpenMetrics text), the periodic loops, shutdown.
//!
//! # Data flow
//!
//! An emitter connection waits for readiness, reads what arrived (a buffer sized by its
//! traffic, up to 64 KiB), decodes every whole LOG frame in it (payloads stay slices of the
//! read buffer) and offers the batch to the engine under one lock, which picks an analyzer
//! per frame and queues it at its priority. When the chosen queue is full the frame goes to
//! another live analyzer with room; when none has room, `backpressure` stops reading that
//! connection until room frees, `drop` drops and counts it. With no analyzer live, frames
//! wait in the holding queue. Each analyzer session has one writer that takes a batch (most
//! urgent first, FIFO within a level) and writes it with few syscalls, and one reader for
//! ACKs. A session that closes, errors, breaks the protocol or hangs leaves the routing set
//! at once and its queued and unacknowledged frames are routed again.
//!
//! With TLS configured every accepted connection first runs its handshake in its own task
//! (a client certificate, under mutual TLS, gives the peer's identity); then the same code
//! serves it through [`runner::net::Stream`]. An emitter connection may open with an EMITTER
//! HELLO: its frames then carry ACK tickets, and a writer task of its own sends the secured
//! count back as it grows; access rules filter its priorities.
//!
//! With `--data-dir` the engine appends every frame it takes to the journal (a copy into a
//! buffer) and gives its ACK ticket to the journal's writer thread, which secures it after
//! the fdatasync that covers it. Frames carry a mark that records them done when they are
//! delivered or dropped. A frame that finds no room leaves memory and waits on disk; a
//! loader task reads such frames back, most urgent first, as room frees. At start the
//! journal hands back every record not done, which waits the same way.

pub(crate) mod access;
pub mod accounting;
pub mod cli;
pub mod config;
pub(crate) mod engine;
pub(crate) mod journal;
pub(crate) mod secured;
pub(crate) mod server;

pub use accounting::{CloseReason, DropReason, Snapshot};
pub use config::Config;
pub use engine::router;
pub use runfolder::{Overflow, Routing, WhenFull};
pub use server::{Listeners, RunError, run};

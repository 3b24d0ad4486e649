//! The closed sets the distributor counts by: why frames were dropped, why connections were
//! closed, why analyzer sessions ended and HELLOs were refused, and the listeners. Each
//! variant's position in `ALL` is its counter's index; its spelling is the metric label,
//! the stats CSV's column suffix and the word in the logs.

use runfolder::spelled;

/// Why a frame was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `--overflow drop` and every live analyzer's queue for its priority was full.
    QueueFull,
    /// `--overflow drop`, no analyzer live and the holding queue full.
    HoldingFull,
    /// It waited in the holding queue through `--max-attempts` retries.
    RetriesExhausted,
    /// Still inside the distributor when the drain deadline passed at shutdown, or read in
    /// the shutdown grace and never found room.
    Shutdown,
    /// `--overflow drop` and `--max-queued-bytes` reached.
    BytesFull,
    /// A priority the access file does not allow the emitter's identity.
    Forbidden,
    /// `--overflow drop` and the journal at `--journal-max-bytes`.
    JournalFull,
    /// It waited on disk, and its record could not be read back.
    JournalCorrupt,
}
spelled!(DropReason {
    QueueFull => "queue_full",
    HoldingFull => "holding_full",
    RetriesExhausted => "retries_exhausted",
    Shutdown => "shutdown",
    BytesFull => "bytes_full",
    Forbidden => "forbidden",
    JournalFull => "journal_full",
    JournalCorrupt => "journal_corrupt",
});

/// The distributor's listeners, as named in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The emitter port.
    Emitter,
    /// The analyzer port.
    Analyzer,
    /// The metrics endpoint.
    Metrics,
}
spelled!(Listener { Emitter => "emitter", Analyzer => "analyzer", Metrics => "metrics" });

/// Why an EMITTER HELLO was refused, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitterReject {
    /// Not an acceptable EMITTER HELLO.
    Malformed,
    /// Over mutual TLS, an id other than the certificate's identity.
    Identity,
    /// The access file's `roles.emitters` does not list the identity.
    NotAllowed,
}
spelled!(EmitterReject { Malformed => "malformed", Identity => "identity", NotAllowed => "not_allowed" });

/// Why the distributor closed a connection on its own (besides bad input and failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// An emitter's frame did not arrive whole within `--frame-timeout`.
    SlowFrame,
    /// An analyzer connection sent no HELLO within 10 s.
    NoHello,
    /// Partial frames over `--max-buffered-bytes`: the largest stalled ones are closed.
    BufferBudget,
    /// At `--max-connections`, the emitter connection idle longest makes room for a new one.
    MaxConnections,
    /// An emitter without an EMITTER HELLO whose certificate identity the access file's
    /// `roles.emitters` does not list (one with a HELLO gets a REJECT instead).
    NotAllowed,
}
spelled!(CloseReason {
    SlowFrame => "slow_frame",
    NoHello => "no_hello",
    BufferBudget => "buffer_budget",
    MaxConnections => "max_connections",
    NotAllowed => "not_allowed",
});

/// Why an analyzer session failed, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The analyzer closed its side (or the connection closed under a write).
    Closed,
    /// A read or write failed.
    IoError,
    /// It broke the protocol (bytes that are no ACK, a bad ACK count).
    ProtocolError,
    /// No write or ACK progress for the hang timeout.
    Hung,
    /// A new session with the same id took over.
    Replaced,
    /// The reloaded access file no longer allows it.
    Revoked,
}
spelled!(FailureReason {
    Closed => "closed",
    IoError => "io_error",
    ProtocolError => "protocol_error",
    Hung => "hung",
    Replaced => "replaced",
    Revoked => "revoked",
});

/// Why HELLOs were refused, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Not an acceptable HELLO.
    Malformed,
    /// A weight that is not finite and > 0.
    InvalidWeight,
    /// A weight above `--max-weight`.
    WeightTooLarge,
    /// `--max-analyzers` reached.
    TooManyAnalyzers,
    /// The id is not the certificate's identity.
    Identity,
    /// The access file does not allow the identity.
    NotAllowed,
}
spelled!(RejectKind {
    Malformed => "malformed",
    InvalidWeight => "invalid_weight",
    WeightTooLarge => "weight_too_large",
    TooManyAnalyzers => "too_many_analyzers",
    Identity => "identity",
    NotAllowed => "not_allowed",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_is_its_own_counter_index() {
        // The counters are arrays indexed by `variant as usize`: ALL must list the variants
        // in declaration order.
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        for (i, r) in FailureReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        for (i, r) in RejectKind::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        for (i, r) in EmitterReject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        for (i, r) in Listener::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
        assert_eq!(DropReason::JournalCorrupt.to_string(), "journal_corrupt");
    }
}

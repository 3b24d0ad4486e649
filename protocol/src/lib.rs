//! Wire protocol, version 1, of the log distributor (see `PROTOCOL.md` at the repository
//! root, which this crate follows byte for byte). All integers are big-endian; all times
//! are nanoseconds since the Unix epoch.
//!
//! # Layout
//!
//! - [`log`]: the emitter stream (emitter -> distributor): back-to-back LOG frames.
//! - [`emitter`]: the optional EMITTER HELLO in front of that stream, and the decoder that
//!   tells the two apart (and decompresses a stream the HELLO says is compressed); the
//!   distributor's ACKs to emitters reuse [`analyzer::encode_ack`].
//! - [`analyzer`]: the analyzer session: HELLO and ACK (analyzer -> distributor), DELIVER,
//!   BATCH and REJECT (distributor -> analyzer).
//! - [`codec`]: compression (§7): lz4 and zstd, the emitter's streaming compressor and the
//!   incremental decompressor of compressed emitter streams.
//! - [`batch`]: BATCH frames (§7): compressed runs of DELIVER frames.
//! - [`syslog`]: the syslog listener's framing (§8, RFC 6587) and the PRI -> priority
//!   mapping.
//! - [`order`]: the delivery-order rule of §3, checked online.
//! - [`probe`]: the test message the load generator puts inside a LOG payload and the
//!   analyzer sink verifies end to end, binary or as text (§4).
//!
//! Every decoder is incremental: it is handed a growing [`bytes::BytesMut`], checks a frame's
//! declared length against its maximum *before* buffering the body, returns `Ok(None)` while
//! a frame is incomplete and takes a whole frame out of the buffer (without copying the
//! payload) once it is there. No decoder panics on any input: the proptests feed them
//! arbitrary bytes. There is no I/O here; what to do about an error is the caller's policy.

pub mod analyzer;
pub mod batch;
pub mod codec;
pub mod emitter;
pub mod log;
pub mod order;
pub mod probe;
pub mod syslog;

/// An incremental decoder of one frame kind: takes the next whole frame out of a growing
/// buffer, `Ok(None)` while it is incomplete. Every decoder of this crate implements it, so
/// one framed reader serves them all.
pub trait Decode {
    /// A decoded frame.
    type Frame;
    /// Why the stream cannot be decoded further.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes the next whole frame out of `buf`; `Ok(None)` while it is incomplete.
    fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<Self::Frame>, Self::Error>;

    /// Bytes the decoder holds itself that are not yet a whole frame (a compressed
    /// stream's decompressed start of a frame); 0 for decoders that keep nothing. A
    /// reader's count of buffered bytes (a frame timeout, a truncated frame at EOF) adds
    /// these to what is in its buffer.
    fn held(&self) -> usize {
        0
    }
}

impl Decode for log::LogDecoder {
    type Frame = log::LogFrame;
    type Error = log::LogError;
    fn decode(
        &mut self,
        buf: &mut bytes::BytesMut,
    ) -> Result<Option<log::LogFrame>, log::LogError> {
        log::LogDecoder::decode(self, buf)
    }
}

impl Decode for analyzer::DownstreamDecoder {
    type Frame = analyzer::Downstream;
    type Error = analyzer::DownstreamError;
    fn decode(
        &mut self,
        buf: &mut bytes::BytesMut,
    ) -> Result<Option<analyzer::Downstream>, analyzer::DownstreamError> {
        analyzer::DownstreamDecoder::decode(self, buf)
    }
}

/// Decodes the HELLO that opens an analyzer session.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloDecoder;

impl Decode for HelloDecoder {
    type Frame = analyzer::Hello;
    type Error = analyzer::HelloError;
    fn decode(
        &mut self,
        buf: &mut bytes::BytesMut,
    ) -> Result<Option<analyzer::Hello>, analyzer::HelloError> {
        analyzer::decode_hello(buf)
    }
}

/// Decodes the ACK frames of an at-least-once analyzer session (the cumulative count).
#[derive(Debug, Clone, Copy, Default)]
pub struct AckDecoder;

impl Decode for AckDecoder {
    type Frame = u64;
    type Error = analyzer::AckError;
    fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<u64>, analyzer::AckError> {
        analyzer::decode_ack(buf)
    }
}

/// Why an id (an analyzer's HELLO, an emitter's EMITTER HELLO) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No bytes.
    #[error("id is empty")]
    Empty,
    /// More than 64 bytes.
    #[error("id is {0} bytes long, the maximum is 64")]
    TooLong(usize),
    /// Not UTF-8.
    #[error("id is not valid UTF-8 (invalid byte at id offset {0})")]
    NotUtf8(usize),
}

/// The longest id, in bytes, of analyzers and emitters.
pub const MAX_ID_LEN: usize = 64;

/// Checks an id: 1 to 64 bytes of UTF-8.
pub fn check_id(id: &[u8]) -> Result<&str, IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(id.len()));
    }
    std::str::from_utf8(id).map_err(|e| IdError::NotUtf8(e.valid_up_to()))
}

/// Reads a big-endian u32 at `at`; the caller has checked the length.
fn be_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(raw)
}

/// Reads a big-endian u64 at `at`; the caller has checked the length.
fn be_u64(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(raw)
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME), the time base of every stamp on the
/// wire. A clock before 1970 reads as 0.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

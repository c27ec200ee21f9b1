//! Why a call across the lattice failed, decided where the failure happens.
//!
//! Both transports report failures through `io::Error`s (the wRPC traits
//! carry nothing else). A failure the callee reports over `trellis-rr/1`
//! travels as a [`Failure`] inside that `io::Error`; a failure NATS reports
//! travels as an `io::ErrorKind` (wrpc-transport-nats turns NATS's
//! no-responders status into `NotConnected`). [`CallErrorKind::of`] reads
//! either back, so no caller ever inspects an error's text.

use std::error::Error as StdError;
use std::io;

/// What kind of failure a lattice call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallErrorKind {
    /// No answer within the call's bound.
    TimedOut,
    /// Nobody serves the subject (NATS no-responders): the callee is not running.
    NoResponders,
    /// The callee took the call and refused it (bad parameters, a failure it reported).
    Refused,
    /// The callee is at its concurrency limit; a retry later may succeed.
    Busy,
    /// NATS or the wRPC framing failed on the way.
    Transport,
    /// The parameters or results do not fit where they must go.
    TooLarge,
    /// The parameters do not match the function's types; the callee never
    /// decoded them.
    Invalid,
}

impl CallErrorKind {
    /// The kind's name in a `trellis-rr/1` error reply ([`crate::lean::ERROR_KIND_HEADER`]).
    pub fn as_str(self) -> &'static str {
        match self {
            CallErrorKind::TimedOut => "timed-out",
            CallErrorKind::NoResponders => "no-responders",
            CallErrorKind::Refused => "refused",
            CallErrorKind::Busy => "busy",
            CallErrorKind::Transport => "transport",
            CallErrorKind::TooLarge => "too-large",
            CallErrorKind::Invalid => "invalid",
        }
    }

    /// The kind a `trellis-rr/1` error reply names; an unknown or missing name
    /// is a refusal (the callee answered, and not with results).
    pub fn from_header(name: Option<&str>) -> Self {
        match name {
            Some("timed-out") => CallErrorKind::TimedOut,
            Some("no-responders") => CallErrorKind::NoResponders,
            Some("busy") => CallErrorKind::Busy,
            Some("transport") => CallErrorKind::Transport,
            Some("too-large") => CallErrorKind::TooLarge,
            Some("invalid") => CallErrorKind::Invalid,
            _ => CallErrorKind::Refused,
        }
    }

    /// The kind of a failure that either transport reported, found anywhere in
    /// `error`'s chain; [`CallErrorKind::Transport`] when nothing more is known.
    pub fn of(error: &(dyn StdError + 'static)) -> Self {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(failure) = e.downcast_ref::<Failure>() {
                return failure.kind;
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(failure) = io.get_ref().and_then(|i| i.downcast_ref::<Failure>()) {
                    return failure.kind;
                }
                match io.kind() {
                    io::ErrorKind::NotConnected => return CallErrorKind::NoResponders,
                    io::ErrorKind::TimedOut => return CallErrorKind::TimedOut,
                    _ => {}
                }
            }
            if let Some(request) = e.downcast_ref::<async_nats::RequestError>() {
                match request.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        return CallErrorKind::NoResponders;
                    }
                    async_nats::RequestErrorKind::TimedOut => return CallErrorKind::TimedOut,
                    async_nats::RequestErrorKind::MaxPayloadExceeded => {
                        return CallErrorKind::TooLarge;
                    }
                    async_nats::RequestErrorKind::InvalidSubject
                    | async_nats::RequestErrorKind::Other => {}
                }
            }
            cause = e.source();
        }
        CallErrorKind::Transport
    }

    /// [`CallErrorKind::of`] for an `anyhow::Error`, as the wRPC traits return:
    /// its outermost error's sources are the rest of its chain.
    pub fn of_anyhow(error: &anyhow::Error) -> Self {
        Self::of(error.as_ref())
    }

    /// The `io::ErrorKind` this kind travels as.
    fn io_kind(self) -> io::ErrorKind {
        match self {
            CallErrorKind::TimedOut => io::ErrorKind::TimedOut,
            CallErrorKind::NoResponders => io::ErrorKind::NotConnected,
            CallErrorKind::Busy => io::ErrorKind::WouldBlock,
            CallErrorKind::TooLarge => io::ErrorKind::FileTooLarge,
            CallErrorKind::Invalid => io::ErrorKind::InvalidData,
            CallErrorKind::Refused | CallErrorKind::Transport => io::ErrorKind::Other,
        }
    }
}

impl std::fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its kind, as one side of a call reports it to the other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure it is.
    pub kind: CallErrorKind,
    /// What happened, in a sentence for people.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`, described by `message`.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl From<Failure> for io::Error {
    fn from(failure: Failure) -> Self {
        io::Error::new(failure.kind.io_kind(), failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_io_error_they_travel_in() {
        for kind in [
            CallErrorKind::TimedOut,
            CallErrorKind::NoResponders,
            CallErrorKind::Refused,
            CallErrorKind::Busy,
            CallErrorKind::Transport,
            CallErrorKind::TooLarge,
            CallErrorKind::Invalid,
        ] {
            let io: io::Error = Failure::new(kind, "x").into();
            assert_eq!(CallErrorKind::of(&io), kind);
            let wrapped = anyhow::Error::new(io).context("calling");
            assert_eq!(CallErrorKind::of_anyhow(&wrapped), kind);
            assert_eq!(CallErrorKind::from_header(Some(kind.as_str())), kind);
        }
    }

    #[test]
    fn nats_statuses_are_read_from_their_io_kind() {
        let io = io::Error::from(io::ErrorKind::NotConnected);
        assert_eq!(CallErrorKind::of(&io), CallErrorKind::NoResponders);
        let other = io::Error::other("framing");
        assert_eq!(CallErrorKind::of(&other), CallErrorKind::Transport);
        assert_eq!(CallErrorKind::from_header(None), CallErrorKind::Refused);
    }
}

//! The wRPC value encoding is not self-describing, and the decoders we pin
//! (wrpc-transport, wrpc-runtime-wasmtime) preallocate from length prefixes:
//! six bytes claiming a list of four billion records abort a process. Every
//! Trellis server therefore knows each function's parameter [`Shape`]s and
//! walks a payload with [`check`] before a decoder sees it. The walk allocates
//! nothing that depends on the payload, and a refusal says what was wrong and
//! where.
//!
//! ```
//! use trellis_wire::{Param, Shape, Signature, check};
//!
//! // wasi:keyvalue/batch.set-many(bucket: borrow<bucket>, key-values: list<tuple<string, list<u8>>>)
//! let set_many = Signature::new(vec![
//!     Param::new("bucket", Shape::Handle),
//!     Param::new(
//!         "key-values",
//!         Shape::List(Box::new(Shape::Tuple(vec![Shape::String, Shape::List(Box::new(Shape::U8))]))),
//!     ),
//! ]);
//! let error = check(&set_many, &[0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "invalid parameters at byte 1 (in parameter `key-values`): declares 4294967295 elements \
//!      of at least 2 byte(s) each, but only 0 bytes can follow"
//! );
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod check;
mod error;
mod shape;
#[cfg(feature = "wit")]
mod wit;

pub use check::{Progress, ZERO_SIZED_LIMIT, check, check_prefix};
pub use error::{PayloadError, Problem};
pub use shape::{Param, Shape, Signature, Signatures};
#[cfg(feature = "wit")]
pub use wit::{WitError, build_script, signatures_of_world, write_signatures};

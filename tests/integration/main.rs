//! End-to-end tests: the real `trellis` binary, real sockets, real components.

mod artifacts;
mod bad_input;
mod blobstore;
mod blobstore_nats;
mod busy;
mod chaos;
mod control;
mod embedding;
mod fuzz;
mod hostile;
mod lattice;
mod limits;
mod memory;
mod messaging;
mod named;
mod permissions;
mod providers;
mod python;
mod registry;
mod reload;
mod scheduler;
mod secrets;
mod serving;
mod support;
mod workloads;

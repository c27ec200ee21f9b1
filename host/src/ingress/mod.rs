//! HTTP ingress: one server per host, routing to components by Host and path.

mod invoke;
mod router;
mod server;

pub use router::RouteInfo;
pub(crate) use router::RouteTable;
pub use server::{SharedRoutes, serve};

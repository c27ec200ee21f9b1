//! HTTP ingress: one server per host, routing to components by Host and path.

mod activity;
mod invoke;
mod limits;
mod router;
mod server;

pub use limits::HttpLimits;

pub use router::RouteInfo;
pub(crate) use router::RouteTable;
pub use server::{SharedRoutes, serve};

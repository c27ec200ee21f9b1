//! Headers the host puts on every wRPC call, so one provider can serve many
//! workloads and keep their data apart. Providers trust them because NATS
//! permissions let only hosts publish to provider subjects.

/// The calling workload's name.
pub const WORKLOAD: &str = "Trellis-Workload";
/// The calling component's name.
pub const COMPONENT: &str = "Trellis-Component";
/// The import pattern of the binding the call goes through (e.g. `wasi:keyvalue/*`).
pub const BINDING: &str = "Trellis-Binding";
/// The binding's `config` as a JSON object of strings.
pub const CONFIG: &str = "Trellis-Config";
/// The binding's secret config values, a JSON object of config key to
/// [`Sealed`](crate::Sealed) value, each sealed to the provider's xkey.
pub const SECRETS: &str = "Trellis-Secrets";
/// W3C trace context of the request that caused the call.
pub const TRACEPARENT: &str = "traceparent";

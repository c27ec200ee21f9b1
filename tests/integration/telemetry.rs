//! OpenTelemetry end to end: a host, a provider and a second host, each its own
//! process exporting OTLP/HTTP to a receiver in this test, make one trace of
//! one request; the Prometheus endpoints parse and their counters move.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

use crate::lattice::{Nats, cli, host_env, provider_in_env, scheduler_in_env};
use futures::StreamExt as _;

use crate::support::{
    TestResult, eventually, example_manifest, get, get_with, post_with, repo, scratch,
};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct SeenSpan {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
}

/// What the processes exported.
#[derive(Default)]
struct Seen {
    spans: Vec<SeenSpan>,
    /// (service, metric name)
    metrics: HashSet<(String, String)>,
}

/// An OTLP/HTTP (protobuf) receiver on a free port.
struct Receiver {
    endpoint: String,
    seen: Arc<Mutex<Seen>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn service_of(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

impl Receiver {
    async fn start() -> Result<Receiver, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let store = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let body = req.into_body().collect().await?.to_bytes();
                                let status = take(&store, &path, &body);
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() = status;
                                Ok::<_, hyper::Error>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { endpoint, seen })
    }

    /// The environment that points a process's exporters here as `service`.
    fn env(&self, service: &str) -> Vec<(String, String)> {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn spans_of(&self, trace: &str) -> Vec<SeenSpan> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.spans
            .iter()
            .filter(|s| s.trace == trace)
            .cloned()
            .collect()
    }

    fn has_metric(&self, service: &str, name: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.metrics
            .contains(&(service.to_string(), name.to_string()))
    }
}

/// Decodes one export into `store`; a body that does not decode is a 400.
fn take(store: &Mutex<Seen>, path: &str, body: &[u8]) -> hyper::StatusCode {
    let mut seen = store.lock().unwrap_or_else(|p| p.into_inner());
    match path {
        "/v1/traces" => {
            let Ok(export) = ExportTraceServiceRequest::decode(body) else {
                return hyper::StatusCode::BAD_REQUEST;
            };
            for resource in export.resource_spans {
                let service = service_of(resource.resource.as_ref());
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        seen.spans.push(SeenSpan {
                            service: service.clone(),
                            trace: hex(&span.trace_id),
                            id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            name: span.name,
                            kind: span.kind,
                        });
                    }
                }
            }
        }
        "/v1/metrics" => {
            let Ok(export) = ExportMetricsServiceRequest::decode(body) else {
                return hyper::StatusCode::BAD_REQUEST;
            };
            for resource in export.resource_metrics {
                let service = service_of(resource.resource.as_ref());
                for scope in resource.scope_metrics {
                    for metric in scope.metrics {
                        seen.metrics.insert((service.clone(), metric.name));
                    }
                }
            }
        }
        _ => return hyper::StatusCode::NOT_FOUND,
    }
    hyper::StatusCode::OK
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The address a process logged for its Prometheus endpoint.
fn metrics_address(stderr: &str) -> Option<SocketAddr> {
    let line = stderr
        .lines()
        .find(|l| l.contains("serving Prometheus metrics"))?;
    let at = line.find("address=")? + "address=".len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Samples of a Prometheus scrape of `addr`, parsed as Prometheus parses them.
async fn scrape(addr: SocketAddr) -> Result<prometheus_parse::Scrape, String> {
    let reply = get(addr, "localhost", "/metrics")
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!(
            "/metrics answered {}: {}",
            reply.status, reply.body
        ));
    }
    prometheus_parse::Scrape::parse(reply.body.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| e.to_string())
}

/// The value of `metric` whose labels include every pair of `labels`.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .reduce(|a, b| a + b)
}

const SERVER: i32 = 2;

#[tokio::test]
async fn one_request_is_one_trace_across_a_host_a_provider_and_another_host() -> TestResult {
    let receiver = Receiver::start().await?;
    let nats = Nats::start("telemetry")?;
    let env = |service: &str| receiver.env(service);
    let (kv_env, a_env, b_env) = (env("keyvalue"), env("host-a"), env("host-b"));
    let mut kv = provider_in_env(
        &nats,
        "trellis-keyvalue-nats",
        "keyvalue",
        &["--metrics", "127.0.0.1:0"],
        &as_refs(&kv_env),
    )?;
    let examples = repo().join("examples/counter");
    let _a = host_env(
        &nats,
        &[&examples.join("greetings.yaml")],
        &[],
        &as_refs(&a_env),
    )?;
    // The counter with its store behind the provider and its greeter on host A.
    let dir = scratch("telemetry")?;
    let manifest = dir.join("traced.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: counter
components:
  api:
    source: {}
    bindings:
      wasi:io: host
      wasi:http: host
      wasi:keyvalue:
        provider: keyvalue
        config:
          bucket: traced
      trellis:example/greeter:
        workload: greetings
routes:
  - component: api
    path: /
",
            examples.join("api.wat").display()
        ),
    )?;
    // And a component whose lookup is a resource method (`bucket.get`).
    let kvget = dir.join("kvget.yaml");
    std::fs::write(
        &kvget,
        format!(
            "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: kvget
components:
  kvget:
    source: {}
    bindings:
      wasi:*: host
      wasi:keyvalue: {{provider: keyvalue}}
routes:
  - component: kvget
    path: /kv
",
            repo().join("tests/components/kvget.wat").display()
        ),
    )?;
    let mut b = host_env(
        &nats,
        &[&manifest, &kvget],
        &["--metrics", "127.0.0.1:0"],
        &as_refs(&b_env),
    )?;

    // One request, continuing a trace the client started.
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace}-{caller}-01");
    let reply = get_with(b.addr, "/", &[("traceparent", &traceparent)]).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("visitor #1"), "{}", reply.body);

    // Spans from all three processes arrive, in one trace.
    let services = ["host-a", "host-b", "keyvalue"];
    let spans = eventually(
        Duration::from_secs(15),
        "spans from every process",
        async || {
            let spans = receiver.spans_of(trace);
            let from: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
            let jetstream = spans.iter().any(|s| s.name.starts_with("jetstream"));
            // Each process exports on its own schedule: wait until every
            // parent has arrived (one that never does fails the check below).
            let linked = spans
                .iter()
                .all(|s| s.parent == caller || spans.iter().any(|p| p.id == s.parent));
            (services.iter().all(|s| from.contains(s)) && jetstream && linked).then_some(spans)
        },
    )
    .await
    .map_err(|e| format!("{e}: {:#?}", receiver.spans_of(trace)))?;
    let by_id: HashMap<&str, &SeenSpan> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    // Every span's parent is the caller's span or another span of the trace.
    for span in &spans {
        assert!(
            span.parent == caller || by_id.contains_key(span.parent.as_str()),
            "{span:?} has a parent outside the trace: {spans:#?}"
        );
    }
    let parent_of = |span: &SeenSpan| by_id.get(span.parent.as_str()).copied();
    let roots: Vec<&SeenSpan> = spans.iter().filter(|s| s.parent == caller).collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let root = roots[0];
    assert_eq!(
        (root.service.as_str(), root.name.as_str(), root.kind),
        ("host-b", "GET /", SERVER)
    );
    // The provider's handling is a child of host B's call, and its JetStream
    // operation a child of that handling.
    let handled = spans
        .iter()
        .find(|s| {
            s.service == "keyvalue" && s.kind == SERVER && s.name.starts_with("wasi:keyvalue/")
        })
        .ok_or_else(|| format!("no provider server span: {spans:#?}"))?;
    assert_eq!(
        parent_of(handled).map(|p| p.service.as_str()),
        Some("host-b")
    );
    let jetstream = spans
        .iter()
        .find(|s| {
            s.name.starts_with("jetstream") && parent_of(s).is_some_and(|p| p.service == "keyvalue")
        })
        .ok_or_else(|| format!("no JetStream span under the provider: {spans:#?}"))?;
    assert_eq!(jetstream.service, "keyvalue");
    // Host A's export ran as a child of host B's call to it.
    let exported = spans
        .iter()
        .find(|s| s.service == "host-a" && s.name.starts_with("trellis:example/greeter"))
        .ok_or_else(|| format!("no span from host A's export: {spans:#?}"))?;
    let call = parent_of(exported).ok_or("the export has no parent")?;
    assert_eq!(call.service, "host-b");
    assert!(call.name.starts_with("trellis:example/greeter"), "{call:?}");

    // A resource method's handling is traced under its call too.
    let method_trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let traceparent = format!("00-{method_trace}-{caller}-01");
    let reply = get_with(b.addr, "/kv", &[("traceparent", &traceparent)]).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let spans = eventually(Duration::from_secs(15), "the method's spans", async || {
        let spans = receiver.spans_of(method_trace);
        // Each process exports on its own schedule: wait for the call's parent too.
        let served = spans
            .iter()
            .find(|s| s.service == "keyvalue" && s.name.ends_with("/bucket.get"));
        let linked = served.is_some_and(|get| spans.iter().any(|s| s.id == get.parent));
        linked.then_some(spans)
    })
    .await
    .map_err(|e| format!("{e}: {:#?}", receiver.spans_of(method_trace)))?;
    let by_id: HashMap<&str, &SeenSpan> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let looked_up = spans
        .iter()
        .find(|s| s.service == "keyvalue" && s.name.ends_with("/bucket.get"))
        .ok_or("no bucket.get span")?;
    let parent = by_id
        .get(looked_up.parent.as_str())
        .ok_or("bucket.get has no parent in the trace")?;
    assert_eq!(
        (parent.service.as_str(), looked_up.kind),
        ("host-b", SERVER),
        "{spans:#?}"
    );

    // A caller's decision not to sample holds across every hop: no process
    // makes a span of it, nor starts a trace of its own for the calls it makes.
    let unsampled = format!("00-7bf92f3577b34da6a3ce929d0e0e4739-{caller}-00");
    let reply = get_with(b.addr, "/", &[("traceparent", &unsampled)]).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let later = "8bf92f3577b34da6a3ce929d0e0e473a";
    let traceparent = format!("00-{later}-{caller}-01");
    let reply = get_with(b.addr, "/", &[("traceparent", &traceparent)]).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Each process exports spans in the order they end: once every process's
    // server span of the later request is in, the earlier one's would be too.
    eventually(
        Duration::from_secs(15),
        "the later request's server spans from every process",
        async || {
            let spans = receiver.spans_of(later);
            services
                .iter()
                .all(|service| {
                    spans
                        .iter()
                        .any(|s| s.service == *service && s.kind == SERVER)
                })
                .then_some(())
        },
    )
    .await?;
    let sampled = [trace, method_trace, later];
    let stray: Vec<SeenSpan> = {
        let seen = receiver.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.spans
            .iter()
            .filter(|s| !sampled.contains(&s.trace.as_str()))
            .cloned()
            .collect()
    };
    assert!(
        stray.is_empty(),
        "spans of an unsampled request, or of traces its calls started: {stray:#?}"
    );

    // Metrics: over OTLP, and on the Prometheus endpoints, moving with requests.
    eventually(
        Duration::from_secs(10),
        "OTLP metrics from host B",
        async || {
            receiver
                .has_metric("host-b", "http.server.request.duration")
                .then_some(())
        },
    )
    .await?;
    let host_metrics =
        metrics_address(&b.stderr_text()).ok_or("host B logged no metrics address")?;
    let kv_metrics =
        metrics_address(&kv.stderr_text()).ok_or("the provider logged no metrics address")?;
    let requests = [
        ("trellis_workload", "counter"),
        ("trellis_component", "api"),
        ("http_route", "/"),
        ("http_response_status_code", "200"),
    ];
    let served = [("trellis_workload", "counter")];
    let before = scrape(host_metrics).await?;
    let provider_before = scrape(kv_metrics).await?;
    let count = "http_server_request_duration_seconds_count";
    let calls = "rpc_server_call_duration_seconds_count";
    let first = sample(&before, count, &requests).ok_or("no request count")?;
    let provider_first =
        sample(&provider_before, calls, &served).ok_or("no provider call count")?;
    for _ in 0..3 {
        assert_eq!(get(b.addr, "localhost", "/").await?.status, 200);
    }
    // A scrape answers from one collection a second: look until it moves.
    let after = eventually(
        Duration::from_secs(5),
        "the request count moves",
        async || {
            let after = scrape(host_metrics).await.ok()?;
            (sample(&after, count, &requests) == Some(first + 3.0)).then_some(after)
        },
    )
    .await?;
    let bound = [
        ("trellis_workload", "counter"),
        ("trellis_binding", "wasi:keyvalue"),
    ];
    assert!(
        sample(&after, "rpc_client_call_duration_seconds_count", &bound).is_some_and(|n| n >= 4.0),
        "no keyvalue calls counted"
    );
    assert!(
        sample(
            &after,
            "trellis_instances_limit",
            &[("trellis_component", "api")]
        )
        .is_some_and(|limit| limit >= 1.0),
        "no instance limit reported"
    );
    eventually(
        Duration::from_secs(5),
        "the provider's calls move",
        async || {
            let after = scrape(kv_metrics).await.ok()?;
            sample(&after, calls, &served)
                .is_some_and(|n| n >= provider_first + 3.0)
                .then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn scheduler_passes_and_control_calls_are_traced_and_placements_counted() -> TestResult {
    let receiver = Receiver::start().await?;
    let nats = Nats::start("telemetry-scheduler")?;
    let (scheduler_env, host_env_vars) = (receiver.env("scheduler"), receiver.env("host"));
    let mut scheduler = scheduler_in_env(
        &nats,
        &["--metrics", "127.0.0.1:0"],
        &as_refs(&scheduler_env),
    )?;
    let _host = host_env(&nats, &[], &[], &as_refs(&host_env_vars))?;
    let dir = scratch("telemetry-scheduler")?;
    let file = dir.join("greetings.yaml");
    std::fs::write(
        &file,
        format!(
            "{}deploy:\n  replicas: 1\n",
            example_manifest("greetings.yaml")?
        ),
    )?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.display().to_string()])?;
    assert_eq!(code, 0, "{err}");

    // The pass that placed it started it through the control API: the host's
    // handling of `start` is a child of the scheduler's call, inside a pass.
    let (pass, call, handled) = eventually(Duration::from_secs(20), "a traced start", async || {
        let seen = receiver.seen.lock().unwrap_or_else(|p| p.into_inner());
        let by_id: HashMap<&str, &SeenSpan> =
            seen.spans.iter().map(|s| (s.id.as_str(), s)).collect();
        seen.spans.iter().find_map(|handled| {
            let call = by_id.get(handled.parent.as_str())?;
            let pass = by_id.get(call.parent.as_str())?;
            (handled.service == "host"
                && handled.name == "trellis:control/host/start"
                && handled.kind == SERVER
                && call.service == "scheduler"
                && pass.name == "scheduler.pass")
                .then(|| ((*pass).clone(), (*call).clone(), handled.clone()))
        })
    })
    .await?;
    assert_eq!(
        (pass.trace.as_str(), call.trace.as_str()),
        (handled.trace.as_str(), handled.trace.as_str())
    );

    let addr = metrics_address(&scheduler.process.stderr_text())
        .ok_or("the scheduler logged no metrics address")?;
    let metrics = scrape(addr).await?;
    let placed = [("trellis_workload", "greetings")];
    assert!(
        sample(&metrics, "trellis_scheduler_placements_total", &placed).is_some_and(|n| n >= 1.0),
        "no placement counted"
    );
    assert!(
        sample(
            &metrics,
            "trellis_scheduler_pass_duration_seconds_count",
            &[]
        )
        .is_some_and(|n| n >= 1.0),
        "no pass counted"
    );
    Ok(())
}

#[tokio::test]
async fn messages_carry_the_publishers_trace_and_deliveries_continue_it() -> TestResult {
    let receiver = Receiver::start().await?;
    let nats = Nats::start("telemetry-messaging")?;
    let (provider_env, host_env_vars) = (receiver.env("messaging"), receiver.env("host"));
    let _messaging = provider_in_env(
        &nats,
        "trellis-messaging-nats",
        "messaging",
        &[],
        &as_refs(&provider_env),
    )?;
    let file = crate::messaging::messenger("telemetry-messaging", "{subscribe: \"greet.*\"}")?;
    let h = host_env(&nats, &[&file], &[], &as_refs(&host_env_vars))?;
    let client = nats.client().await?;

    // A component's publish carries the trace of the request that made it.
    let mut orders = client.subscribe("orders.new").await?;
    client.flush().await?;
    let published = "0af7651916cd43dd8448eb211c80319c";
    let reply = post_with(
        h.addr,
        "/publish/orders.new",
        b"one pizza",
        &[(
            "traceparent",
            &format!("00-{published}-b7ad6b7169203331-01"),
        )],
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = tokio::time::timeout(Duration::from_secs(5), orders.next())
        .await?
        .ok_or("no message")?;
    let carried = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_string())
        .ok_or("the message carries no traceparent")?;
    assert!(
        carried.starts_with(&format!("00-{published}-")),
        "{carried}"
    );

    // A delivery continues the trace its publisher wrote into the message.
    let (trace, publisher) = ("5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", format!("00-{trace}-{publisher}-01").as_str());
    eventually(
        Duration::from_secs(30),
        "a handler answers greet.world",
        async || {
            let reply = tokio::time::timeout(
                Duration::from_millis(500),
                client.request_with_headers("greet.world", headers.clone(), "trellis".into()),
            )
            .await;
            reply.ok()?.ok()
        },
    )
    .await?;
    let spans = eventually(
        Duration::from_secs(15),
        "the delivery's spans",
        async || {
            let spans = receiver.spans_of(trace);
            // The two processes export on their own schedules: wait for both.
            let handled = spans
                .iter()
                .any(|s| s.service == "host" && s.parent != publisher);
            let delivered = spans
                .iter()
                .any(|s| s.service == "messaging" && s.parent == publisher);
            (handled && delivered).then_some(spans)
        },
    )
    .await?;
    let process = spans
        .iter()
        .find(|s| {
            s.service == "messaging" && s.name == "process greet.world" && s.parent == publisher
        })
        .ok_or_else(|| format!("no delivery span under the publisher's: {spans:#?}"))?;
    let handled = spans
        .iter()
        .find(|s| s.service == "host" && s.parent == process.id)
        .ok_or_else(|| format!("the handler's span is not under the delivery's: {spans:#?}"))?;
    assert!(
        handled.name.starts_with("trellis:messaging/handler"),
        "{handled:?}"
    );
    Ok(())
}

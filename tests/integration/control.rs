//! The control API on a real host: typed replies for every call, IDs that name their
//! host, repeated starts, and a slow start that does not hold up other calls.

use std::time::{Duration, Instant};

use trellis_control_api::{ControlClient, ControlError, Refusal, WorkloadState, WorkloadStatus};

use crate::lattice::{LatticeHost, Nats, control_client, host};
use crate::python::python_component;
use crate::support::{TestResult, eventually, example_manifest, get};

fn refusal(result: Result<impl std::fmt::Debug, ControlError>) -> Result<Refusal, String> {
    match result {
        Err(ControlError::Refused { refusal, .. }) => Ok(refusal),
        other => Err(format!("expected a refusal, got {other:?}")),
    }
}

#[tokio::test]
async fn the_control_api_starts_inspects_and_stops_workloads() -> TestResult {
    let nats = Nats::start("control")?;
    let h = host(&nats, &[], &["--id", "H1", "--label", "zone=a"])?;
    let control = control_client(&nats, "H1", Duration::from_secs(120)).await?;
    let h1 = nats.host_id("H1")?;
    let id = |workload: &str| format!("{h1}:{workload}");

    // The heartbeat: JSON that any NATS client (the `nats` CLI too) can read.
    let watcher = nats.client().await?;
    let mut beats = watcher
        .subscribe(format!("trellis.default.evt.host.{h1}.heartbeat"))
        .await?;
    watcher.flush().await?;

    let info = control.describe().await?;
    assert_eq!(
        (info.id.as_str(), info.lattice.as_str()),
        (h1.as_str(), "default")
    );
    assert_eq!(info.labels, vec![("zone".to_string(), "a".to_string())]);
    assert!(info.workloads.is_empty());

    // Start, and the workload serves HTTP.
    let manifest = example_manifest("workload.yaml")?;
    let status = control.start(&id("counter-1"), &manifest).await?;
    assert_eq!(
        (status.name.as_str(), status.state),
        ("counter", WorkloadState::Running)
    );
    assert_eq!(status.routes, vec!["*/ -> api".to_string()]);
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #1.\n");

    let beat = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            let message = futures::StreamExt::next(&mut beats).await?;
            let beat: serde_json::Value = serde_json::from_slice(&message.payload).ok()?;
            if beat["workloads"] == serde_json::json!(["counter"]) {
                return Some(beat);
            }
        }
    })
    .await?
    .ok_or("the heartbeats stopped")?;
    assert_eq!(beat["id"], h1.as_str());
    assert_eq!(beat["labels"]["zone"], "a");
    assert_eq!(beat["max_instances"], 1000);
    assert!(beat["instances_in_use"].is_u64(), "{beat}");
    let interfaces = beat["interfaces"].as_array().ok_or("no interfaces")?;
    assert!(interfaces.contains(&"wasi:keyvalue/store".into()), "{beat}");

    // The same ID again: the existing state, no second start.
    let again = control.start(&id("counter-1"), &manifest).await?;
    assert_eq!(
        (again.id.as_str(), again.state),
        (id("counter-1").as_str(), WorkloadState::Running)
    );
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #2.\n");

    // Typed refusals.
    match refusal(control.start("H2:counter-1", &manifest).await)? {
        Refusal::WrongHost(m) => assert!(
            m.contains(&format!("is for host `H2`; this is host `{h1}`")),
            "{m}"
        ),
        other => return Err(format!("{other:?}").into()),
    }
    match refusal(
        control
            .start(&id("bad"), "apiVersion: trellis.dev/v1alpha1\nkind: Nope\n")
            .await,
    )? {
        Refusal::Invalid(m) => {
            assert!(m.contains("2:7: unsupported kind `Nope`"), "{m}");
            assert!(m.contains("missing"), "{m}");
        }
        other => return Err(format!("{other:?}").into()),
    }
    let unbound = manifest
        .replace("wasi:keyvalue: host", "wasi:keyvalue: {provider: nobody}")
        .replace("name: counter", "name: broken");
    match refusal(control.start(&id("broken-1"), &unbound).await)? {
        Refusal::StartFailed(m) => assert!(m.contains("provider `nobody` is not running"), "{m}"),
        other => return Err(format!("{other:?}").into()),
    }
    let failed = control.inspect(&id("broken-1")).await?;
    assert_eq!(failed.state, WorkloadState::Failed);
    assert!(
        failed
            .last_error
            .unwrap_or_default()
            .contains("provider `nobody`")
    );
    match refusal(control.stop(&id("nothing")).await)? {
        Refusal::NotFound(m) => assert!(
            m.contains(&format!("no workload `{h1}:nothing` on host `{h1}`")),
            "{m}"
        ),
        other => return Err(format!("{other:?}").into()),
    }

    // The old workload kept serving through all of that; then it stops.
    assert_eq!(get(h.addr, "localhost", "/").await?.status, 200);
    control.stop(&id("counter-1")).await?;
    assert_eq!(get(h.addr, "localhost", "/").await?.status, 404);
    let ids: Vec<String> = control
        .workloads()
        .await?
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec![id("broken-1")]);

    // A call to a host that is not there is an error, not a hang.
    let nobody = control_client(&nats, "H9", Duration::from_secs(5)).await?;
    match nobody.describe().await {
        Err(ControlError::NoHost { .. }) => {}
        other => return Err(format!("expected NoHost, got {other:?}").into()),
    }
    Ok(())
}

/// A start still running when this returns: host `H1` compiling the 18 MB Python
/// component as workload `H1:py-1`.
async fn slow_start(
    name: &str,
) -> Result<
    (
        Nats,
        LatticeHost,
        ControlClient,
        tokio::task::JoinHandle<Result<WorkloadStatus, ControlError>>,
    ),
    Box<dyn std::error::Error>,
> {
    let wasm = python_component("hello")?;
    let nats = Nats::start(name)?;
    let h = host(&nats, &[], &["--id", "H1"])?;
    let control = control_client(&nats, "H1", Duration::from_secs(300)).await?;
    let manifest = format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: py\ncomponents:\n  app:\n    source: {}\n    bindings: {{wasi:*: host}}\nroutes:\n  - component: app\n",
        wasm.display()
    );
    let slow = {
        let control = control.clone();
        let workload = format!("{}:py-1", nats.host_id("H1")?);
        tokio::spawn(async move { control.start(&workload, &manifest).await })
    };
    Ok((nats, h, control, slow))
}

#[tokio::test]
async fn a_slow_start_does_not_hold_up_other_calls() -> TestResult {
    // Compiling the 18 MB Python component takes seconds; meanwhile the host answers.
    let (_nats, _h, control, slow) = slow_start("control-slow").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut slowest = Duration::ZERO;
    let waited = deadline.saturating_duration_since(Instant::now());
    eventually(waited, "the workload is seen starting", async || {
        let asked = Instant::now();
        let info = control.describe().await.ok()?;
        slowest = slowest.max(asked.elapsed());
        info.workloads
            .iter()
            .any(|w| w.state == WorkloadState::Starting)
            .then_some(())
    })
    .await?;
    assert!(
        slowest < Duration::from_secs(2),
        "describe took {slowest:?}"
    );
    let status = slow.await??;
    assert_eq!(status.state, WorkloadState::Running);
    Ok(())
}

#[tokio::test]
async fn a_stop_during_a_start_leaves_nothing_running() -> TestResult {
    let (nats, h, control, slow) = slow_start("control-race").await?;
    // Stop it while it compiles.
    eventually(
        Duration::from_secs(30),
        "the workload is starting",
        async || {
            let listed = control.workloads().await.ok()?;
            listed
                .iter()
                .any(|w| w.state == WorkloadState::Starting)
                .then_some(())
        },
    )
    .await?;
    control
        .stop(&format!("{}:py-1", nats.host_id("H1")?))
        .await?;
    match refusal(slow.await?)? {
        Refusal::NotFound(m) => assert!(m.contains("was stopped while it started"), "{m}"),
        other => return Err(format!("{other:?}").into()),
    }
    assert!(control.workloads().await?.is_empty());
    assert_eq!(get(h.addr, "localhost", "/").await?.status, 404);
    Ok(())
}

//! In-memory keyvalue data on `trellis host` belongs to the workload name on
//! that host: a rollout keeps it, and a workload stopped and started again
//! starts empty.

use std::time::Duration;

use crate::lattice::{Nats, control_client, host};
use crate::support::{TestResult, example_manifest, get};

#[tokio::test]
async fn in_memory_data_lives_as_long_as_its_workload_name() -> TestResult {
    let nats = Nats::start("memory-data")?;
    let h = host(&nats, &[], &["--id", "H1"])?;
    let control = control_client(&nats, "H1", Duration::from_secs(120)).await?;
    let h1 = nats.host_id("H1")?;
    let id = |workload: &str| format!("{h1}:{workload}");
    let visit = async || -> Result<String, Box<dyn std::error::Error>> {
        Ok(get(h.addr, "localhost", "/").await?.body)
    };
    let v1 = example_manifest("workload.yaml")?;
    control.start(&id("counter@v1"), &v1).await?;
    assert_eq!(visit().await?, "Hello, trellis! You are visitor #1.\n");
    assert_eq!(visit().await?, "Hello, trellis! You are visitor #2.\n");

    // A rollout: v2 is up before v1 goes, and the count goes on.
    let v2 = v1.replace("memory: 16MiB", "memory: 17MiB");
    assert_ne!(v1, v2);
    control.start(&id("counter@v2"), &v2).await?;
    assert_eq!(visit().await?, "Hello, trellis! You are visitor #3.\n");

    // Stopped, then started again: the data went with the last version.
    control.stop(&id("counter@v2")).await?;
    assert!(control.workloads().await?.is_empty());
    control.start(&id("counter@v3"), &v1).await?;
    assert_eq!(visit().await?, "Hello, trellis! You are visitor #1.\n");
    Ok(())
}

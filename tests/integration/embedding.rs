//! The host as a library: several workloads behind one listener.

use trellis_host::{EngineSettings, Host};
use trellis_manifest::Workload;

use crate::support::{TestResult, get, repo};

#[tokio::test]
async fn two_workloads_share_a_host_and_one_failing_does_not_disturb_the_other() -> TestResult {
    let host = std::sync::Arc::new(Host::new(EngineSettings::default())?);
    for file in [
        "examples/counter/workload.yaml",
        "tests/manifests/limits.yaml",
    ] {
        let path = repo().join(file);
        let workload = Workload::from_file(&path)?;
        host.run(host.load(workload, &path).await?).await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let host = host.clone();
        tokio::spawn(async move {
            host.serve(listener, trellis_host::HttpLimits::default(), async {
                let _ = stopped.await;
            })
            .await
        })
    };
    // `/` goes to the counter; the limits workload's routes are more specific.
    assert_eq!(get(addr, "localhost", "/trap").await?.status, 500);
    let reply = get(addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #1.\n");
    assert_eq!(get(addr, "localhost", "/hello").await?.status, 200);

    assert!(host.stop("counter"));
    assert_eq!(get(addr, "localhost", "/").await?.status, 404);
    assert_eq!(get(addr, "localhost", "/hello").await?.status, 200);
    let _ = stop.send(());
    server.await?;
    Ok(())
}

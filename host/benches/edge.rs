//! The leaf hop: HTTP requests/s of `tests/components/kvget.wat` (one wRPC
//! keyvalue call per request) on a host at a leaf site,
//!
//! 1. to the site's own keyvalue-nats provider (the leaf server, its domain),
//! 2. to a provider that runs only at the hub (one more server hop, over the
//!    leaf connection),
//!
//! each beside the same workload and provider on one nats-server. wRPC over a
//! leaf hop has no published figure anywhere; these are the first.
//!
//! Run with `scripts/bench edge`. Settings: BENCH_SECONDS (3 per round),
//! BENCH_ROUNDS (3), BENCH_CONNECTIONS (64).

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use support::{
    alternate, free_port, keyvalue_provider_with, kv_manifest, nats_server, nats_server_with,
    setting, trellis_host_with, wait_for_provider,
};

fn main() -> Result<()> {
    let seconds = setting("BENCH_SECONDS", 3);
    let rounds = setting("BENCH_ROUNDS", 3);
    let connections = setting("BENCH_CONNECTIONS", 64) as u32;
    let dir = std::env::temp_dir().join(format!("trellis-bench-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Runtime::new()?;

    // A hub and one leaf site, each with its own JetStream domain.
    let leaf_port = free_port()?.port();
    let hub_conf = dir.join("hub.conf");
    std::fs::write(
        &hub_conf,
        format!(
            "jetstream {{ store_dir: {:?}, domain: hub }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}\n",
            dir.join("hub-js")
        ),
    )?;
    let site_conf = dir.join("site.conf");
    std::fs::write(
        &site_conf,
        format!(
            "jetstream {{ store_dir: {:?}, domain: site }}\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{leaf_port}\", deny_imports: [\"$KV.>\"], deny_exports: [\"$KV.>\"] }} ] }}\n",
            dir.join("site-js")
        ),
    )?;
    let hub = nats_server_with(&hub_conf)?;
    let site = nats_server_with(&site_conf)?;
    let single = nats_server(&dir.join("single-js"))?;
    let url = |s: &support::Server| format!("nats://{}", s.addr);

    let _at_site = keyvalue_provider_with(&url(&site), "keyvalue", &["--js-domain", "site"])?;
    let _at_hub = keyvalue_provider_with(&url(&hub), "hubkv", &["--js-domain", "hub"])?;
    let _alone = keyvalue_provider_with(&url(&single), "keyvalue", &[])?;
    runtime.block_on(async {
        wait_for_provider(&url(&site), "keyvalue").await?;
        // Through the leaf connection: the hub's provider is reachable from the site.
        wait_for_provider(&url(&site), "hubkv").await?;
        wait_for_provider(&url(&single), "keyvalue").await
    })?;

    let kvget = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/components/kvget.wat");
    let local = kv_manifest(&dir, "kv-site", &kvget, "/site", "{provider: keyvalue}")?;
    let remote = kv_manifest(&dir, "kv-hub", &kvget, "/hub", "{provider: hubkv}")?;
    let one = kv_manifest(&dir, "kv-single", &kvget, "/single", "{provider: keyvalue}")?;
    let site_host = trellis_host_with(&url(&site), &host_args(&[&local, &remote], Some("site")))?;
    let single_host = trellis_host_with(&url(&single), &host_args(&[&one], None))?;
    let single_url = format!("http://{}/single", single_host.addr);

    println!(
        "1. site host -> site provider (leaf server) vs one server, wrk -t1 -c{connections}, {rounds} rounds of {seconds}s"
    );
    alternate(
        &format!("http://{}/site", site_host.addr),
        &single_url,
        "one server",
        rounds,
        seconds,
        connections,
    )?;
    println!(
        "\n2. site host -> hub provider (through the leaf connection) vs one server, wrk -t1 -c{connections}, {rounds} rounds of {seconds}s"
    );
    alternate(
        &format!("http://{}/hub", site_host.addr),
        &single_url,
        "one server",
        rounds,
        seconds,
        connections,
    )?;
    drop((site_host, single_host, site, hub, single));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `--manifest` for each of `files`, and `--js-domain` if given.
fn host_args<'a>(files: &[&'a PathBuf], domain: Option<&'a str>) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = Vec::new();
    for f in files {
        args.extend([OsStr::new("--manifest"), f.as_os_str()]);
    }
    if let Some(domain) = domain {
        args.extend([OsStr::new("--js-domain"), OsStr::new(domain)]);
    }
    args
}

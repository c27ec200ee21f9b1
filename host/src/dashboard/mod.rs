//! `trellis dashboard`: a live web page of one lattice, built from what the
//! lattice already says — host heartbeats, provider heartbeats and the
//! scheduler's status — so it needs no agent of its own and changes nothing.

mod server;
mod view;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::time::Instant;
use trellis_lattice::{HostHeartbeat, NameKind, NatsArgs, ProviderInfo, Role, micro};
use trellis_scheduler::Store;

use view::LatticeView;

/// How often the scheduler's status is read, silent members are dropped and
/// a changed state is sent to the pages.
const LOOK: Duration = Duration::from_secs(1);
/// How long answers to the start-up ping are taken.
const PING_ANSWERS: Duration = Duration::from_secs(2);
/// Heartbeats larger than this are ignored unread.
const MAX_HEARTBEAT: usize = 64 << 10;

/// Serves the dashboard of `nats`'s lattice on `listen` until `shutdown`,
/// answering requests that name it by `names` (beside localhost and IP
/// addresses).
pub async fn run(
    nats: &NatsArgs,
    listen: SocketAddr,
    names: Vec<String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = nats.connect(&Role::Operator, true).await?;
    let subjects = nats.subjects();
    let hosts = client
        .subscribe(subjects.host_heartbeats())
        .await
        .context("cannot subscribe to host heartbeats")?;
    let providers = client
        .subscribe(subjects.provider_heartbeats())
        .await
        .context("cannot subscribe to provider heartbeats")?;
    // Replicas answer a ping at once; after that their heartbeats keep them,
    // and the inbox (which every role may publish to) is closed.
    let (asking, lattice) = (client.clone(), nats.lattice.clone());
    let answers = futures::stream::once(async move {
        let answers = micro::gather(
            &asking,
            micro::Verb::Info.subject(None, None),
            PING_ANSWERS,
            false,
            |info: micro::Info| ProviderInfo::from_micro(&info, &lattice),
        )
        .await;
        answers.unwrap_or_else(|e| {
            tracing::warn!("cannot ask the providers what they are: {e}");
            Vec::new()
        })
    })
    .flat_map(futures::stream::iter);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().unwrap_or(listen);
    let mut view = LatticeView::new(nats.lattice.as_str());
    let (publish, state) = tokio::sync::watch::channel(server::Encoded::new(json(&view)));
    let watcher = tokio::spawn(async move {
        let mut beats = futures::stream::select_all([
            hosts.map(Heard::Host).boxed(),
            providers.map(Heard::Provider).boxed(),
            answers.map(Heard::Answer).boxed(),
        ]);
        let mut looks = tokio::time::interval(LOOK);
        let mut store = None;
        let mut last = view.snapshot();
        loop {
            tokio::select! {
                Some(heard) = beats.next() => {
                    heard.apply(&mut view);
                    continue;
                }
                _ = looks.tick() => {
                    view.expire(Instant::now().into_std());
                    read_workloads(&client, &subjects, &mut store, &mut view).await;
                }
                else => break,
            }
            // At most once a look, however fast heartbeats come.
            let now = view.snapshot();
            if now != last {
                publish.send_replace(server::Encoded::new(json(&view)));
                last = now;
            }
        }
    });
    println!("dashboard serving on http://{bound}");
    server::serve(listener, state, names, shutdown).await;
    watcher.abort();
    Ok(())
}

/// A heartbeat, not yet trusted.
enum Heard {
    Host(async_nats::Message),
    Provider(async_nats::Message),
    /// A provider replica's answer to `$SRV.INFO`, of this lattice.
    Answer(ProviderInfo),
}

impl Heard {
    /// Counts a heartbeat that parses and names the member its subject names.
    fn apply(self, view: &mut LatticeView) {
        let at = std::time::Instant::now();
        if let Heard::Host(message) | Heard::Provider(message) = &self
            && message.payload.len() > MAX_HEARTBEAT
        {
            return;
        }
        match self {
            Heard::Host(message) => {
                let Ok(beat) = serde_json::from_slice::<HostHeartbeat>(&message.payload) else {
                    return;
                };
                let named = message.subject.split('.').nth(4) == Some(beat.id.as_str());
                if named && trellis_lattice::check_name(NameKind::Host, &beat.id).is_ok() {
                    view.host_heard(beat, at);
                }
            }
            Heard::Provider(message) => {
                let Ok(info) = serde_json::from_slice::<ProviderInfo>(&message.payload) else {
                    return;
                };
                // A heartbeat's subject names the provider it is about.
                if message.subject.split('.').nth(4) == Some(info.name.as_str()) {
                    Self::provider(info, view, at);
                }
            }
            Heard::Answer(info) => Self::provider(info, view, at),
        }
    }

    fn provider(info: ProviderInfo, view: &mut LatticeView, at: std::time::Instant) {
        let valid = trellis_lattice::check_name(NameKind::Provider, &info.name).is_ok()
            && info.instance.len() <= 128;
        if valid {
            view.provider_heard(info, at);
        }
    }
}

/// Reads the scheduler's desired state and status into `view`, opening the
/// buckets once they exist (a lattice whose scheduler never ran has none).
async fn read_workloads(
    client: &async_nats::Client,
    subjects: &trellis_lattice::Subjects,
    store: &mut Option<Store>,
    view: &mut LatticeView,
) {
    if store.is_none() {
        *store = Store::open_existing(client.clone(), subjects).await.ok();
    }
    let Some(opened) = store else { return };
    match (opened.all_desired().await, opened.all_status().await) {
        (Ok(desired), Ok(status)) => view.workloads_read(desired, status),
        (Err(e), _) | (_, Err(e)) => tracing::warn!("cannot read the scheduler's state: {e}"),
    }
}

fn json(view: &LatticeView) -> String {
    serde_json::to_string(&view.snapshot()).unwrap_or_else(|_| "{}".into())
}

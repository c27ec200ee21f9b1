//! `trellis mirror`: what a leaf site reads from the hub through a cut link.
//!
//! The hub keeps the desired state, the status, the artifact store and the
//! signatures in its JetStream domain. At a site, mirrors of them in the
//! site's own domain let `trellis get` answer and hosts fetch `lattice://`
//! components while the hub is unreachable; JetStream catches them up when
//! the link returns. They are read-only copies: writes go to the hub. Run it
//! after the hub's scheduler has started (it makes the buckets it mirrors);
//! a mirror made earlier waits for its origin and catches up later.

use async_nats::jetstream::{kv, stream};
use trellis_artifacts::LatticeStore;
use trellis_lattice::{ARTIFACTS_BUCKET, NameKind, NatsArgs, SIGNATURES_BUCKET, check_name};

use crate::cli::{Outcome, connect};

/// The KV buckets a site mirrors: the scheduler's and the signatures.
const MIRRORED_BUCKETS: [&str; 4] = ["desired", "status", "scheduler", SIGNATURES_BUCKET];

/// Creates (or keeps) the site's mirrors of the hub's lattice state. Run at
/// the site, as the operator, with `--js-domain SITE`.
pub async fn mirror(nats: &NatsArgs, hub: &str) -> Outcome {
    let Some(site) = nats.js_domain.as_deref() else {
        return Outcome::Invalid(
            "name the site's JetStream domain with --js-domain; the mirrors live there".into(),
        );
    };
    if let Err(e) = check_name(NameKind::Domain, hub) {
        return Outcome::Invalid(e.to_string());
    }
    if site == hub {
        return Outcome::Invalid(format!(
            "--js-domain and --hub-domain are both `{hub}`; a mirror copies another domain"
        ));
    }
    let client = match connect(nats).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let subjects = nats.subjects();
    // The artifact store and the signatures exist at the hub before any push,
    // so their mirrors start at once instead of retrying.
    let hub_js = async_nats::jetstream::with_domain(client.clone(), hub);
    if let Err(e) = LatticeStore::open_with(hub_js, &subjects, true).await {
        return Outcome::Unreachable(format!("the hub's artifact store (domain `{hub}`): {e}"));
    }
    let js = subjects.jetstream(client);
    let api_prefix = format!("$JS.{hub}.API");
    let from = |name: String| stream::Source {
        name,
        external: Some(stream::External {
            api_prefix: api_prefix.clone(),
            delivery_prefix: None,
        }),
        ..Default::default()
    };
    for what in MIRRORED_BUCKETS {
        let bucket = subjects.bucket(what);
        let stream = format!("KV_{bucket}");
        match existing(&js, &stream, &api_prefix).await {
            Existing::Mirror => {
                say!("{bucket}: mirrored already");
                continue;
            }
            Existing::Other(problem) => return refuse(&stream, site, &problem),
            Existing::None => {}
        }
        let config = kv::Config {
            bucket: bucket.clone(),
            history: 1,
            mirror: Some(from(stream.clone())),
            ..Default::default()
        };
        if let Err(e) = js.create_key_value(config).await {
            return refuse(&stream, site, &e.to_string());
        }
        say!("{bucket}: mirrored from domain `{hub}`");
    }
    let objects = format!("OBJ_{}", subjects.bucket(ARTIFACTS_BUCKET));
    match existing(&js, &objects, &api_prefix).await {
        Existing::Mirror => say!("{objects}: mirrored already"),
        Existing::Other(problem) => return refuse(&objects, site, &problem),
        Existing::None => {
            let config = stream::Config {
                name: objects.clone(),
                mirror: Some(from(objects.clone())),
                allow_direct: true,
                allow_rollup: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            };
            if let Err(e) = js.create_stream(config).await {
                return refuse(&objects, site, &e.to_string());
            }
            say!("{objects}: mirrored from domain `{hub}`");
        }
    }
    Outcome::Done
}

/// What the site's domain already holds under a mirror's name.
enum Existing {
    None,
    /// A mirror of the same stream at the hub.
    Mirror,
    /// Something else: a stream of the site's own, or a mirror of another
    /// origin, which `trellis mirror` must not take for the hub's copy.
    Other(String),
}

async fn existing(js: &async_nats::jetstream::Context, name: &str, api_prefix: &str) -> Existing {
    let Ok(mut stream) = js.get_stream(name).await else {
        return Existing::None;
    };
    let config = match stream.info().await {
        Ok(info) => info.config.clone(),
        Err(e) => return Existing::Other(format!("its configuration cannot be read: {e}")),
    };
    match config.mirror {
        Some(source)
            if source.name == name
                && source.external.as_ref().map(|e| e.api_prefix.as_str()) == Some(api_prefix) =>
        {
            Existing::Mirror
        }
        Some(source) => Existing::Other(format!(
            "it mirrors `{}` through `{}`, not the hub's",
            source.name,
            source
                .external
                .map(|e| e.api_prefix)
                .unwrap_or_else(|| "this domain".into())
        )),
        None => Existing::Other(
            "it exists and is no mirror (the site's own data?); remove it to mirror the hub's"
                .into(),
        ),
    }
}

fn refuse(stream: &str, site: &str, problem: &str) -> Outcome {
    Outcome::Refused(format!(
        "cannot mirror {stream} into domain `{site}`: {problem}"
    ))
}

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
    let at_hub = trellis_lattice::Subjects::new(&nats.lattice).with_domain(Some(hub.to_string()));
    if let Err(e) = trellis_artifacts::LatticeStore::open(client.clone(), &at_hub, true).await {
        return Outcome::Unreachable(format!("the hub's artifact store (domain `{hub}`): {e}"));
    }
    let js = subjects.jetstream(client);
    let from = |name: String| stream::Source {
        name,
        external: Some(stream::External {
            api_prefix: format!("$JS.{hub}.API"),
            delivery_prefix: None,
        }),
        ..Default::default()
    };
    for what in MIRRORED_BUCKETS {
        let bucket = subjects.bucket(what);
        if js.get_key_value(&bucket).await.is_ok() {
            say!("{bucket}: mirrored already");
            continue;
        }
        let config = kv::Config {
            bucket: bucket.clone(),
            history: 1,
            mirror: Some(from(format!("KV_{bucket}"))),
            ..Default::default()
        };
        if let Err(e) = js.create_key_value(config).await {
            return Outcome::Refused(format!("cannot mirror {bucket} into domain `{site}`: {e}"));
        }
        say!("{bucket}: mirrored from domain `{hub}`");
    }
    let objects = format!("OBJ_{}", subjects.bucket(ARTIFACTS_BUCKET));
    let config = stream::Config {
        name: objects.clone(),
        mirror: Some(from(objects.clone())),
        allow_direct: true,
        allow_rollup: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    match js.get_stream(&objects).await {
        Ok(_) => say!("{objects}: mirrored already"),
        Err(_) => match js.create_stream(config).await {
            Ok(_) => say!("{objects}: mirrored from domain `{hub}`"),
            Err(e) => {
                return Outcome::Refused(format!(
                    "cannot mirror {objects} into domain `{site}`: {e}"
                ));
            }
        },
    }
    Outcome::Done
}

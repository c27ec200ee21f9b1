//! `trellis:secrets`: the secrets a component's manifest names, resolved once
//! per workload version when it starts (from the host's environment, or from
//! the lattice's store sealed to this host's xkey), held in memory and handed
//! to the guest as handles. A value is never logged: [`SecretValues`] prints
//! names only, and every error names the secret, not its value.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;
use trellis_manifest::SecretSource;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/secrets",
        world: "trellis:secrets/imports",
        with: {
            "trellis:secrets/store.secret": super::SecretHandle,
        },
    });
}

use generated::trellis::secrets::{reveal, store};

/// A secret the guest holds: the name it asked for.
pub struct SecretHandle {
    name: String,
}

/// A component's resolved secrets, by the names it uses.
pub(crate) struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// `trellis:secrets`, one lifecycle: resolve at prepare, share per store.
pub(crate) struct Secrets;

impl Capability for Secrets {
    const INTERFACES: &'static [BuiltinInterface] = &[
        BuiltinInterface::new("trellis:secrets/store", |l| {
            store::add_to_linker::<InstanceState, HasSecrets>(l, view)
        }),
        BuiltinInterface::new("trellis:secrets/reveal", |l| {
            reveal::add_to_linker::<InstanceState, HasSecrets>(l, view)
        }),
    ];
    type Host = ();
    type Prepared = Arc<SecretValues>;
    type State = Arc<SecretValues>;

    fn prepare(_: &(), cx: &PrepareContext<'_>) -> Result<Self::Prepared, CapabilityError> {
        let mut values = BTreeMap::new();
        let mut problems = Vec::new();
        for secret in &cx.component.secrets {
            match resolve(cx, &secret.source) {
                Ok(value) => {
                    values.insert(secret.name.clone(), value);
                }
                Err(why) => problems.push(format!("secret `{}`: {why}", secret.name)),
            }
        }
        if !problems.is_empty() {
            return Err(CapabilityError {
                capability: "trellis:secrets",
                message: problems.join("; "),
            });
        }
        Ok(Arc::new(SecretValues(values)))
    }

    fn instantiate(values: &Self::Prepared) -> Result<Self::State, CapabilityError> {
        Ok(values.clone())
    }
}

/// The value `source` names. Lattice secrets are fetched here, on the
/// loader's blocking thread (prepare runs off the request threads).
fn resolve(cx: &PrepareContext<'_>, source: &SecretSource) -> Result<String, String> {
    match source {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| format!("this host has no environment variable `{var}`"))
        }
        SecretSource::Lattice(key) => {
            let lattice = cx.lattice.ok_or_else(|| {
                format!("`{key}` is in the lattice's store, and this host is not on a lattice")
            })?;
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|_| "no async runtime to ask the secret store from".to_string())?;
            runtime.block_on(lattice.secret(cx.workload, &cx.component.name, key))
        }
    }
}

struct HasSecrets;
impl HasData for HasSecrets {
    type Data<'a> = SecretsView<'a>;
}

/// What the secret host functions see of the store's data.
pub(crate) struct SecretsView<'a> {
    values: &'a SecretValues,
    table: &'a mut ResourceTable,
}

fn view(s: &mut InstanceState) -> SecretsView<'_> {
    let (caps, table) = s.caps_and_table();
    SecretsView {
        values: &caps.secrets,
        table,
    }
}

impl store::Host for SecretsView<'_> {
    fn get(&mut self, name: String) -> Result<Resource<SecretHandle>, store::Error> {
        if !self.values.0.contains_key(&name) {
            return Err(store::Error::NotFound(format!(
                "the manifest gives this component no secret `{name}`"
            )));
        }
        self.table
            .push(SecretHandle { name })
            .map_err(|e| store::Error::Other(e.to_string()))
    }
}

impl store::HostSecret for SecretsView<'_> {
    fn drop(&mut self, secret: Resource<SecretHandle>) -> wasmtime::Result<()> {
        self.table.delete(secret)?;
        Ok(())
    }
}

impl reveal::Host for SecretsView<'_> {
    fn reveal(&mut self, secret: Resource<SecretHandle>) -> String {
        self.table
            .get(&secret)
            .ok()
            .and_then(|handle| self.values.0.get(&handle.name))
            .cloned()
            .unwrap_or_default()
    }
}

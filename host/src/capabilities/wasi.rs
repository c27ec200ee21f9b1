//! WASI 0.2 itself (cli, clocks, random, io, filesystem, sockets), from wasmtime-wasi.
//!
//! Every interface is linked on its own, so a component gets exactly the ones
//! its bindings send to the host. Filesystem and sockets are linked but closed:
//! no directory is visible and no address is reachable unless `grants` says so.

use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::{DirPerms, FilePerms, WasiCtx, WasiCtxBuilder, WasiView};
use wasmtime_wasi_io::bindings::wasi::io;

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::sandbox::Sandbox;
use crate::state::InstanceState;
use std::sync::Arc;
use trellis_manifest::Component;

struct HasTable;
impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

type S = InstanceState;

fn table(s: &mut S) -> &mut ResourceTable {
    s.ctx().table
}

fn rng(s: &mut S) -> &mut wasmtime_wasi::random::WasiRandomCtx {
    s.ctx().ctx.random()
}

/// The WASI 0.2 interfaces this host implements.
const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:io/error", |l| {
        io::error::add_to_linker::<S, HasTable>(l, table)
    }),
    BuiltinInterface::new("wasi:io/poll", |l| {
        io::poll::add_to_linker::<S, HasTable>(l, table)
    }),
    BuiltinInterface::new("wasi:io/streams", |l| {
        io::streams::add_to_linker::<S, HasTable>(l, table)
    }),
    BuiltinInterface::new("wasi:clocks/wall-clock", |l| {
        clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
    }),
    BuiltinInterface::new("wasi:clocks/monotonic-clock", |l| {
        clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)
    }),
    BuiltinInterface::new("wasi:random/random", |l| {
        random::random::add_to_linker::<S, WasiRandom>(l, rng)
    }),
    BuiltinInterface::new("wasi:random/insecure", |l| {
        random::insecure::add_to_linker::<S, WasiRandom>(l, rng)
    }),
    BuiltinInterface::new("wasi:random/insecure-seed", |l| {
        random::insecure_seed::add_to_linker::<S, WasiRandom>(l, rng)
    }),
    BuiltinInterface::new("wasi:cli/environment", |l| {
        cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/exit", |l| {
        cli::exit::add_to_linker::<S, WasiCli>(l, &Default::default(), S::cli)
    }),
    BuiltinInterface::new("wasi:cli/stdin", |l| {
        cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/stdout", |l| {
        cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/stderr", |l| {
        cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/terminal-input", |l| {
        cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/terminal-output", |l| {
        cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/terminal-stdin", |l| {
        cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/terminal-stdout", |l| {
        cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:cli/terminal-stderr", |l| {
        cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)
    }),
    BuiltinInterface::new("wasi:filesystem/types", |l| {
        filesystem::types::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)
    }),
    BuiltinInterface::new("wasi:filesystem/preopens", |l| {
        filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)
    }),
    BuiltinInterface::new("wasi:sockets/network", |l| {
        sockets::network::add_to_linker::<S, WasiSockets>(l, &Default::default(), S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/instance-network", |l| {
        sockets::instance_network::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/tcp", |l| {
        sockets::tcp::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/tcp-create-socket", |l| {
        sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/udp", |l| {
        sockets::udp::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/udp-create-socket", |l| {
        sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
    BuiltinInterface::new("wasi:sockets/ip-name-lookup", |l| {
        sockets::ip_name_lookup::add_to_linker::<S, WasiSockets>(l, S::sockets)
    }),
];

/// WASI 0.2: a context per store, from the component's env and grants.
pub(crate) struct Wasi;

impl Capability for Wasi {
    const INTERFACES: &'static [BuiltinInterface] = INTERFACES;
    type Host = ();
    type Prepared = (Component, Arc<crate::sandbox::Sandbox>);
    type State = WasiCtx;

    fn prepare(
        _: &(),
        cx: &PrepareContext<'_>,
    ) -> Result<(Component, Arc<Sandbox>), CapabilityError> {
        Ok((cx.component.clone(), cx.sandbox.clone()))
    }

    fn instantiate(
        (component, sandbox): &(Component, Arc<Sandbox>),
    ) -> Result<WasiCtx, CapabilityError> {
        context(component, sandbox)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        let (caps, table) = self.caps_and_table();
        wasmtime_wasi::WasiCtxView {
            ctx: &mut caps.wasi,
            table,
        }
    }
}

/// Builds a component's WASI context: its env, its grants within the host's
/// sandbox, the host's stdio. A preopen is resolved and checked again for
/// every instance, so a symlink a guest put in place since the workload
/// loaded cannot lead it outside the allowed directories.
fn context(component: &Component, sandbox: &Sandbox) -> Result<WasiCtx, CapabilityError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .inherit_stdout()
        .inherit_stderr()
        .arg(&component.name);
    for (key, value) in &component.env {
        builder.env(key, value);
    }
    for preopen in &component.grants.preopens {
        let (dirs, files) = if preopen.readonly {
            (DirPerms::READ, FilePerms::READ)
        } else {
            (DirPerms::all(), FilePerms::all())
        };
        let host = sandbox
            .files
            .check(&preopen.host)
            .map_err(|e| CapabilityError {
                capability: "wasi",
                message: format!("preopen {e}"),
            })?;
        builder
            .preopened_dir(&host, &preopen.guest, dirs, files)
            .map_err(|e| CapabilityError {
                capability: "wasi",
                message: format!("cannot open preopen `{}`: {e}", preopen.host.display()),
            })?;
    }
    if component.grants.network && sandbox.network {
        builder.inherit_network().allow_ip_name_lookup(true);
    }
    Ok(builder.build())
}

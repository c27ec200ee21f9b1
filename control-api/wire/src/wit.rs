//! Signatures read from WIT, for build scripts: a provider serves what its
//! world exports, and its server checks payloads against these.

use std::path::Path;

use wit_parser::{Resolve, Type, TypeDefKind, WorldItem};

use crate::{Param, Shape, Signature, Signatures};

/// Why a WIT package could not be turned into signatures.
#[derive(Debug, thiserror::Error)]
pub enum WitError {
    /// The package or world does not parse or resolve.
    #[error("cannot read WIT at {path}: {reason}")]
    Parse {
        /// The directory given.
        path: String,
        /// wit-parser's reason (it reports with anyhow, which this crate
        /// does not depend on).
        reason: String,
    },
    /// The signatures file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The signatures of every function the world `world` of the package in
/// `dir` exports, keyed as wRPC serves them (interface ID, function name
/// without its `[method]`/`[static]`/`[constructor]` prefix).
pub fn signatures_of_world(dir: &Path, world: &str) -> Result<Signatures, WitError> {
    let parse = |e: &dyn std::fmt::Display| WitError::Parse {
        path: dir.display().to_string(),
        reason: format!("{e:#}"),
    };
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(dir).map_err(|e| parse(&e))?;
    let world = resolve
        .select_world(package, Some(world))
        .map_err(|e| parse(&e))?;
    let mut signatures = Signatures::default();
    for item in resolve.worlds[world].exports.values() {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let Some(instance) = resolve.id_of(*id) else {
            continue;
        };
        for function in resolve.interfaces[*id].functions.values() {
            let name = function
                .name
                .split_once(']')
                .map_or(function.name.as_str(), |(_, rest)| rest);
            let params = function
                .params
                .iter()
                .map(|(name, ty)| Param::new(name, shape(&resolve, ty)))
                .collect();
            signatures.insert(&instance, name, Signature::new(params));
        }
    }
    Ok(signatures)
}

/// For a build script: writes the signatures of `world` in `dir` as JSON to
/// `out`, for `Signatures::from_json` at run time, and asks cargo to rerun
/// when the WIT changes.
pub fn write_signatures(dir: &Path, world: &str, out: &Path) -> Result<(), WitError> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let signatures = signatures_of_world(dir, world)?;
    std::fs::write(out, signatures.to_json()).map_err(|source| WitError::Write {
        path: out.display().to_string(),
        source,
    })
}

fn boxed(resolve: &Resolve, ty: &Type) -> Box<Shape> {
    Box::new(shape(resolve, ty))
}

fn shape(resolve: &Resolve, ty: &Type) -> Shape {
    match ty {
        Type::Bool => Shape::Bool,
        Type::U8 => Shape::U8,
        Type::S8 => Shape::S8,
        Type::U16 => Shape::U16,
        Type::S16 => Shape::S16,
        Type::U32 => Shape::U32,
        Type::S32 => Shape::S32,
        Type::U64 => Shape::U64,
        Type::S64 => Shape::S64,
        Type::F32 => Shape::F32,
        Type::F64 => Shape::F64,
        Type::Char => Shape::Char,
        Type::String => Shape::String,
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::Record(r) => {
                Shape::Tuple(r.fields.iter().map(|f| shape(resolve, &f.ty)).collect())
            }
            TypeDefKind::Tuple(t) => {
                Shape::Tuple(t.types.iter().map(|t| shape(resolve, t)).collect())
            }
            TypeDefKind::Variant(v) => Shape::Variant(
                v.cases
                    .iter()
                    .map(|c| c.ty.as_ref().map(|t| shape(resolve, t)))
                    .collect(),
            ),
            TypeDefKind::Enum(e) => Shape::Enum(e.cases.len() as u32),
            TypeDefKind::Flags(f) => Shape::Flags(f.flags.len() as u32),
            TypeDefKind::Option(t) => Shape::Option(boxed(resolve, t)),
            TypeDefKind::Result(r) => Shape::Result {
                ok: r.ok.as_ref().map(|t| boxed(resolve, t)),
                err: r.err.as_ref().map(|t| boxed(resolve, t)),
            },
            TypeDefKind::List(t) => Shape::List(boxed(resolve, t)),
            TypeDefKind::Future(t) => Shape::Future(t.as_ref().map(|t| boxed(resolve, t))),
            TypeDefKind::Stream(s) => Shape::Stream(s.element.as_ref().map(|t| boxed(resolve, t))),
            TypeDefKind::Type(t) => shape(resolve, t),
            TypeDefKind::Handle(_) | TypeDefKind::Resource | TypeDefKind::Unknown => Shape::Handle,
        },
    }
}

/// The whole `build.rs` of a server: writes the signatures of `world` in
/// `dir` (relative to the crate) to `$OUT_DIR/signatures.json`.
pub fn build_script(dir: &str, world: &str) -> Result<(), WitError> {
    let out = std::env::var_os("OUT_DIR").unwrap_or_default();
    write_signatures(
        Path::new(dir),
        world,
        &Path::new(&out).join("signatures.json"),
    )
}

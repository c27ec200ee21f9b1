//! The wire shapes of an export's parameters, from wasmtime's types, so the
//! export server checks every payload before wrpc-runtime-wasmtime decodes it.

use trellis_wire::{Param, Shape, Signature};
use wasmtime::component::Type;
use wasmtime::component::types::ComponentFunc;

/// The signature a caller's payload must match.
pub(crate) fn signature(func: &ComponentFunc) -> Signature {
    Signature::new(
        func.params()
            .map(|(name, ty)| Param::new(name, shape(&ty)))
            .collect(),
    )
}

fn boxed(ty: Type) -> Box<Shape> {
    Box::new(shape(&ty))
}

fn shape(ty: &Type) -> Shape {
    match ty {
        Type::Bool => Shape::Bool,
        Type::S8 => Shape::S8,
        Type::U8 => Shape::U8,
        Type::S16 => Shape::S16,
        Type::U16 => Shape::U16,
        Type::S32 => Shape::S32,
        Type::U32 => Shape::U32,
        Type::S64 => Shape::S64,
        Type::U64 => Shape::U64,
        Type::Float32 => Shape::F32,
        Type::Float64 => Shape::F64,
        Type::Char => Shape::Char,
        Type::String => Shape::String,
        Type::List(list) => Shape::List(boxed(list.ty())),
        Type::Record(record) => Shape::Tuple(record.fields().map(|f| shape(&f.ty)).collect()),
        Type::Tuple(tuple) => Shape::Tuple(tuple.types().map(|t| shape(&t)).collect()),
        Type::Variant(variant) => Shape::Variant(
            variant
                .cases()
                .map(|case| case.ty.map(|t| shape(&t)))
                .collect(),
        ),
        Type::Enum(e) => Shape::Enum(u32::try_from(e.names().len()).unwrap_or(u32::MAX)),
        Type::Option(option) => Shape::Option(boxed(option.ty())),
        Type::Result(result) => Shape::Result {
            ok: result.ok().map(boxed),
            err: result.err().map(boxed),
        },
        Type::Flags(flags) => Shape::Flags(u32::try_from(flags.names().len()).unwrap_or(u32::MAX)),
        Type::Own(_) | Type::Borrow(_) => Shape::Handle,
        Type::Future(future) => Shape::Future(future.ty().map(boxed)),
        Type::Stream(stream) => Shape::Stream(stream.ty().map(boxed)),
        // wrpc-runtime-wasmtime refuses these without reading: nothing may follow.
        Type::Map(_) | Type::ErrorContext => Shape::Tuple(Vec::new()),
    }
}

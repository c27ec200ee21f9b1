//! Writes the signatures of `trellis:control/host`, which every host checks
//! control-API payloads against (see `trellis_wire`).

fn main() -> Result<(), trellis_wire::WitError> {
    trellis_wire::build_script("../../wit/deps/control", "agent")
}

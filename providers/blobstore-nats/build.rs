//! Writes the signatures of the functions this provider serves, from its WIT,
//! for the payload check (see `trellis_wire`).

fn main() -> Result<(), trellis_wire::WitError> {
    trellis_wire::build_script("../../wit/deps/trellis-blobstore", "provider")
}

//! TLS for a lattice without OpenSSL tools: a CA of the lattice, a server
//! certificate for nats-server and one client certificate every process may
//! present (identities stay the nkeys; TLS keeps the wire private and the
//! server authentic).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::directory::{DirectoryError, write};

/// Writes `ca.pem`, `server.pem` (+ key, for `localhost` and 127.0.0.1 and the
/// machine's host name) and `client.pem` (+ key) into `dir`.
pub fn generate(dir: &Path) -> Result<(), DirectoryError> {
    std::fs::create_dir_all(dir).map_err(|source| DirectoryError::Io {
        path: dir.into(),
        source,
    })?;
    let key = |e: rcgen::Error| DirectoryError::Key(e.to_string());
    let ca_key = KeyPair::generate().map_err(key)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(key)?;
    ca.distinguished_name
        .push(DnType::CommonName, "Trellis lattice CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(key)?;
    write(&dir.join("ca.pem"), ca_cert.pem().as_bytes(), false)?;
    write(
        &dir.join("ca-key.pem"),
        ca_key.serialize_pem().as_bytes(),
        true,
    )?;

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    for (file, names) in [("server", names), ("client", vec!["trellis-client".into()])] {
        let pair = KeyPair::generate().map_err(key)?;
        let mut params = CertificateParams::new(names).map_err(key)?;
        params.distinguished_name.push(DnType::CommonName, file);
        let cert = params.signed_by(&pair, &ca_cert, &ca_key).map_err(key)?;
        write(
            &dir.join(format!("{file}.pem")),
            cert.pem().as_bytes(),
            false,
        )?;
        write(
            &dir.join(format!("{file}-key.pem")),
            pair.serialize_pem().as_bytes(),
            true,
        )?;
    }
    Ok(())
}

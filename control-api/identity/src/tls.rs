//! TLS for a lattice without OpenSSL tools: a CA of the lattice, a server
//! certificate for nats-server (one more per leaf site) and one client
//! certificate every process may present (identities stay the nkeys; TLS keeps the wire private and the
//! server authentic).

use std::path::Path;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::directory::{DirectoryError, write};

/// Writes `ca.pem`, `server.pem` (+ key, for `localhost` and 127.0.0.1 and the
/// machine's host name) and `client.pem` (+ key) into `dir`.
pub fn generate(dir: &Path) -> Result<(), DirectoryError> {
    std::fs::create_dir_all(dir).map_err(|source| DirectoryError::Io {
        path: dir.into(),
        source,
    })?;
    let ca_key = KeyPair::generate().map_err(key_error)?;
    let ca_cert = ca_params()?.self_signed(&ca_key).map_err(key_error)?;
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
    let issuer = (&ca_cert, &ca_key);
    issue(dir, "server", names, issuer)?;
    issue(dir, "client", vec!["trellis-client".into()], issuer)
}

/// Writes a leaf site's own TLS files into `site_dir`: `server.pem` (+ key)
/// for `names`, signed by the lattice CA in `tls_dir`, and copies of the CA
/// and the client certificate, so the site directory is all a site needs and
/// a site's server key opens no other server's identity.
pub fn issue_site(
    tls_dir: &Path,
    site_dir: &Path,
    names: Vec<String>,
) -> Result<(), DirectoryError> {
    let read = |file: &str| {
        let path = tls_dir.join(file);
        std::fs::read_to_string(&path).map_err(|source| DirectoryError::Io { path, source })
    };
    let ca_key = KeyPair::from_pem(&read("ca-key.pem")?).map_err(key_error)?;
    // The same name and key as ca.pem: what it signs verifies against ca.pem.
    let ca_cert = ca_params()?.self_signed(&ca_key).map_err(key_error)?;
    std::fs::create_dir_all(site_dir).map_err(|source| DirectoryError::Io {
        path: site_dir.into(),
        source,
    })?;
    issue(site_dir, "server", names, (&ca_cert, &ca_key))?;
    for (file, secret) in [
        ("ca.pem", false),
        ("client.pem", false),
        ("client-key.pem", true),
    ] {
        write(&site_dir.join(file), read(file)?.as_bytes(), secret)?;
    }
    Ok(())
}

fn ca_params() -> Result<CertificateParams, DirectoryError> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(key_error)?;
    ca.distinguished_name
        .push(DnType::CommonName, "Trellis lattice CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(ca)
}

/// Writes `<file>.pem` and `<file>-key.pem` into `dir`, for `names`.
fn issue(
    dir: &Path,
    file: &str,
    names: Vec<String>,
    (ca_cert, ca_key): (&Certificate, &KeyPair),
) -> Result<(), DirectoryError> {
    let pair = KeyPair::generate().map_err(key_error)?;
    let mut params = CertificateParams::new(names).map_err(key_error)?;
    params.distinguished_name.push(DnType::CommonName, file);
    let cert = params
        .signed_by(&pair, ca_cert, ca_key)
        .map_err(key_error)?;
    write(
        &dir.join(format!("{file}.pem")),
        cert.pem().as_bytes(),
        false,
    )?;
    write(
        &dir.join(format!("{file}-key.pem")),
        pair.serialize_pem().as_bytes(),
        true,
    )
}

fn key_error(e: rcgen::Error) -> DirectoryError {
    DirectoryError::Key(e.to_string())
}

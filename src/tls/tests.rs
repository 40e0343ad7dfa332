use super::*;
use rcgen::{CertificateParams, KeyPair};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed(dir: &Path, name: &str) -> (TlsFiles, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (TlsFiles { cert_file: c, key_file: k, client_ca: None }, cert.der().to_vec())
}

/// The fingerprint is the certificate's SHA-256 as openssl prints it, and
/// tells a renewed certificate from the one before.
#[test]
fn loads_a_certificate_and_reports_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (files, der) = self_signed(dir.path(), "a");
    let tls = ServerTls::load(&files).unwrap();
    assert_eq!(tls.fingerprint(), fingerprint(&der));
    assert_eq!(tls.fingerprint().len(), 32 * 3 - 1);
    assert!(tls.fingerprint().chars().all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(tls.chain_len(), 1);
    assert_eq!(tls, ServerTls::load(&files).unwrap());
    let (renewed, _) = self_signed(dir.path(), "a");
    assert_ne!(tls, ServerTls::load(&renewed).unwrap());
}

/// A key file that is not PEM, or holds no key, is refused naming the file
/// and never quoting it: its bytes are the secret.
#[test]
fn a_bad_key_file_is_named_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut files, _) = self_signed(dir.path(), "a");
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
    for (text, says) in [
        (format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"), "not valid PEM"),
        (format!("-----BEGIN PRIVATE KEY-----\n{secret}\n"), "has no \"-----END"),
        (String::new(), "holds no private key"),
    ] {
        files.key_file = dir.path().join("bad.key");
        std::fs::write(&files.key_file, &text).unwrap();
        let e = ServerTls::load(&files).unwrap_err();
        assert_eq!(e.file(), TlsFile::Key);
        let shown = e.to_string();
        assert!(shown.contains("bad.key") && shown.contains(says) && !shown.contains(secret), "{shown}");
    }
}

//! TLS on the API listener (issue 13.4): the `[api]` certificate, key and
//! optional client CA files, read and checked whole into a [`ServerTls`]
//! that the front ([`crate::front`]) takes each new connection's handshake
//! from.
//!
//! The files are read while the config is validated (`check-config`, start
//! and every reload), so a missing file, a file that is not PEM, a key that
//! does not fit its certificate or a CA file without a certificate is a
//! config error naming the key, and a reload with such a file is refused
//! while the certificate in force keeps being served. A reload that reads
//! good files puts them in force for every connection accepted after it;
//! connections already open keep the certificate they were made with.
//!
//! Client certificates, when `tls_client_ca_file` is set, are checked by
//! rustls's WebPKI verifier against that CA: `required` refuses a handshake
//! without one, `optional` lets a client without one in (it still needs a
//! bearer token, as every client does) but refuses one whose certificate
//! the CA did not sign. A certificate never replaces the token: it keeps
//! strangers from even reaching the token check.
//!
//! Only rustls's aws-lc-rs provider is used, the one reqwest already
//! brings, so the daemon carries one TLS stack. Messages name files, never
//! what a key file holds.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Whether a client must show a certificate signed by the client CA
/// (`api.tls_client_auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate, no connection (the default once a client CA is set:
    /// a CA configured and then not enforced would be a false comfort).
    Required,
    /// A client without a certificate is let in (to its bearer-token check);
    /// one with a certificate the CA did not sign is refused. For a move to
    /// client certificates, client by client.
    Optional,
}

impl ClientAuth {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
        }
    }
}

/// Which of the `[api]` TLS files a problem is in, so the config error can
/// point at its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// `api.tls_cert_file`.
    Cert,
    /// `api.tls_key_file`.
    Key,
    /// `api.tls_client_ca_file`.
    ClientCa,
}

impl TlsFile {
    /// The config key naming this file.
    pub fn key(self) -> &'static str {
        match self {
            TlsFile::Cert => "api.tls_cert_file",
            TlsFile::Key => "api.tls_key_file",
            TlsFile::ClientCa => "api.tls_client_ca_file",
        }
    }
}

/// The client CA and what it is used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCa {
    /// PEM file of the CA certificates client certificates must chain to.
    pub file: PathBuf,
    /// Whether a certificate is required or only checked when shown.
    pub auth: ClientAuth,
}

/// The `[api]` TLS files as configured (absolute paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Client certificates checked against this CA, if set.
    pub client_ca: Option<ClientCa>,
}

/// Why the TLS files cannot be used. Each names the file and says which
/// one ([`TlsError::file`]), never quoting what a key file holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, a directory, no permission).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{} is not valid PEM: {why}", path.display())]
    Pem {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong, in words (never the file's text).
        why: &'static str,
    },
    /// No `CERTIFICATE` block in a file that must hold one.
    #[error("{} holds no certificate (a PEM block \"-----BEGIN CERTIFICATE-----\")", path.display())]
    NoCertificate {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
    },
    /// No private key block in the key file.
    #[error(
        "{} holds no private key (a PEM block \"-----BEGIN PRIVATE KEY-----\", RSA PRIVATE KEY or EC PRIVATE KEY)",
        path.display()
    )]
    NoKey {
        /// The key file.
        path: PathBuf,
    },
    /// rustls refused what the file holds: a key it cannot sign with, a
    /// key that does not belong to the certificate, a certificate it cannot
    /// parse, a CA certificate it cannot trust.
    #[error("{}: {why}: {source}", path.display())]
    Refused {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What was being done.
        why: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA file.
    #[error("{}: cannot check client certificates with it: {source}", path.display())]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::server::VerifierBuilderError,
    },
}

impl TlsError {
    /// The file the problem is in, for the config key to point at.
    pub fn file(&self) -> TlsFile {
        match self {
            TlsError::Read { file, .. }
            | TlsError::Pem { file, .. }
            | TlsError::NoCertificate { file, .. }
            | TlsError::Refused { file, .. } => *file,
            TlsError::NoKey { .. } => TlsFile::Key,
            TlsError::Verifier { .. } => TlsFile::ClientCa,
        }
    }
}

/// The listener's TLS, loaded and checked: what each new connection's
/// handshake is made with. Built only by [`ServerTls::load`]; swapped whole
/// with the config on reload.
#[derive(Clone)]
pub struct ServerTls {
    files: TlsFiles,
    acceptor: TlsAcceptor,
    fingerprint: String,
    chain: usize,
}

impl ServerTls {
    /// Reads and checks the files, and builds the server's TLS config:
    /// TLS 1.2 and 1.3 with rustls's safe defaults, HTTP/1.1 by ALPN.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = certificates(TlsFile::Cert, &files.cert_file)?;
        let key = private_key(&files.key_file)?;
        let signing = provider.key_provider.load_private_key(key).map_err(|source| TlsError::Refused {
            file: TlsFile::Key,
            path: files.key_file.clone(),
            why: "not a private key this server can sign with (RSA, ECDSA or Ed25519)",
            source,
        })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(source @ rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsError::Refused {
                    file: TlsFile::Key,
                    path: files.key_file.clone(),
                    why: "this key does not belong to the certificate in api.tls_cert_file",
                    source,
                })
            }
            Err(source) => {
                return Err(TlsError::Refused {
                    file: TlsFile::Cert,
                    path: files.cert_file.clone(),
                    why: "the first certificate cannot be read",
                    source,
                })
            }
        }
        let fingerprint = certified.end_entity_cert().map(|c| fingerprint(c)).unwrap_or_default();
        let chain_len = certified.cert.len();

        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Refused {
                file: TlsFile::Cert,
                path: files.cert_file.clone(),
                why: "no TLS version to serve it with",
                source,
            })?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(TlsFile::ClientCa, &ca.file)? {
                    roots.add(cert).map_err(|source| TlsError::Refused {
                        file: TlsFile::ClientCa,
                        path: ca.file.clone(),
                        why: "a certificate cannot serve as a CA to check clients against",
                        source,
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match ca.auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier =
                    verifier.build().map_err(|source| TlsError::Verifier { path: ca.file.clone(), source })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        // The front serves HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            files: files.clone(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
            chain: chain_len,
        })
    }

    /// Makes the handshake of one new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The files it was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// SHA-256 of the server certificate, as `openssl x509 -fingerprint
    /// -sha256` prints it (`AB:CD:..`): what an operator compares to see
    /// which certificate is in force.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How many certificates are served: the server's and its intermediates.
    pub fn chain_len(&self) -> usize {
        self.chain
    }
}

/// Equal when loaded from the same files and serving the same certificate
/// (the key is checked against it), so a reload can tell a renewal.
impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files && self.fingerprint == other.fingerprint
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).field("fingerprint", &self.fingerprint).finish()
    }
}

/// SHA-256 of a certificate's DER, upper-case hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { file, path: path.to_path_buf(), source })
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn certificates(file: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(file, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        file,
        path: path.to_path_buf(),
        why: pem_problem(&e),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { file, path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first private key block of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(TlsFile::Key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_path_buf() },
        e => TlsError::Pem { file: TlsFile::Key, path: path.to_path_buf(), why: pem_problem(&e) },
    })
}

/// What is wrong with a PEM file, in words: pki-types's own messages quote
/// the file's bytes, which in a key file are the secret.
fn pem_problem(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no \"-----END ...-----\" line",
        pem::Error::IllegalSectionStart { .. } => "a \"-----BEGIN\" line is malformed",
        pem::Error::Base64Decode(_) => "a block's body is not base64",
        pem::Error::SectionTooLarge => "a block is too large",
        pem::Error::NoItemsFound => "nothing of the expected kind found",
        _ => "it cannot be read as PEM",
    }
}

#[cfg(test)]
mod tests;

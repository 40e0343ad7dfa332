//! `[api]`'s TLS keys (issue 13.4): `tls_cert_file` and `tls_key_file`
//! together or not at all, `tls_client_ca_file` and `tls_client_auth` only
//! with them, every file read and checked now ([`crate::tls::ServerTls`]),
//! so `check-config`, a start and a reload all refuse a file the listener
//! could not use, pointing at the key that names it.
//!
//! Plain HTTP stays allowed: on a loopback address it is what a local
//! billing feed and `ctl` use, and elsewhere it is a warning, as issue 13.4
//! asks (the link may already be encrypted, a VPN or WireGuard network),
//! said by `check-config` and logged at every start and reload.

use super::origin::Origin;
use super::{ConfigError, ConfigWarning};
use crate::tls::{ClientAuth, ClientCa, ServerTls, TlsFile, TlsFiles};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The TLS keys of `[api]` as written.
pub(super) struct RawTls {
    pub(super) cert_file: Option<Spanned<PathBuf>>,
    pub(super) key_file: Option<Spanned<PathBuf>>,
    pub(super) client_ca_file: Option<Spanned<PathBuf>>,
    pub(super) client_auth: Option<Spanned<ClientAuth>>,
}

/// The listener's TLS (none: plain HTTP) and the warnings about it.
pub(super) fn tls(
    origin: &Origin,
    raw: RawTls,
    listen: &Spanned<SocketAddr>,
) -> Result<(Option<ServerTls>, Vec<ConfigWarning>), ConfigError> {
    let mut warnings = Vec::new();
    let (cert, key) = match (raw.cert_file, raw.key_file) {
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            return Err(origin.error(
                cert.span(),
                "api.tls_cert_file is set but api.tls_key_file is not: set both for TLS, or neither for plain HTTP"
                    .into(),
            ))
        }
        (None, Some(key)) => {
            return Err(origin.error(
                key.span(),
                "api.tls_key_file is set but api.tls_cert_file is not: set both for TLS, or neither for plain HTTP"
                    .into(),
            ))
        }
        (None, None) => {
            if let Some(ca) = &raw.client_ca_file {
                return Err(origin.error(
                    ca.span(),
                    "api.tls_client_ca_file needs api.tls_cert_file and api.tls_key_file: client certificates \
                     are asked for in a TLS handshake"
                        .into(),
                ));
            }
            if let Some(auth) = &raw.client_auth {
                return Err(origin.error(auth.span(), "api.tls_client_auth needs api.tls_client_ca_file".into()));
            }
            let addr = *listen.get_ref();
            if !addr.ip().to_canonical().is_loopback() {
                warnings.push(origin.warning(
                    listen.span(),
                    format!(
                        "api.listen {addr} is not a loopback address and api.tls_cert_file is not set: bearer \
                         tokens and events cross the network in plain HTTP; set api.tls_cert_file and \
                         api.tls_key_file (or keep a TLS proxy on this host in front of a loopback address)"
                    ),
                ));
            }
            return Ok((None, warnings));
        }
    };
    let client_ca = match (raw.client_ca_file, raw.client_auth) {
        (None, Some(auth)) => {
            return Err(origin.error(
                auth.span(),
                "api.tls_client_auth needs api.tls_client_ca_file (the CA client certificates are checked against)"
                    .into(),
            ))
        }
        (None, None) => None,
        (Some(file), auth) => Some((file, auth.map_or(ClientAuth::Required, Spanned::into_inner))),
    };
    let spans =
        Spans { cert: cert.span(), key: key.span(), client_ca: client_ca.as_ref().map_or(0..0, |(f, _)| f.span()) };
    let files = TlsFiles {
        cert_file: origin.resolve(cert.into_inner()),
        key_file: origin.resolve(key.into_inner()),
        client_ca: client_ca.map(|(file, auth)| ClientCa { file: origin.resolve(file.into_inner()), auth }),
    };
    let loaded =
        ServerTls::load(&files).map_err(|e| origin.error(spans.of(e.file()), format!("{}: {e}", e.file().key())))?;
    if let Some(mode) = readable_by_others(&files.key_file) {
        warnings.push(origin.warning(
            spans.key,
            format!(
                "api.tls_key_file {} is readable by every user (mode {mode:04o}): make it 0640, owned by \
                 root and the daemon's group",
                files.key_file.display()
            ),
        ));
    }
    Ok((Some(loaded), warnings))
}

/// Where each file's key sits in the config.
struct Spans {
    cert: Range<usize>,
    key: Range<usize>,
    client_ca: Range<usize>,
}

impl Spans {
    fn of(&self, file: TlsFile) -> Range<usize> {
        match file {
            TlsFile::Cert => self.cert.clone(),
            TlsFile::Key => self.key.clone(),
            TlsFile::ClientCa => self.client_ca.clone(),
        }
    }
}

/// The key file's mode if any user may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o004 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    fn base(api: &str) -> String {
        format!("[daemon]\nstate_dir = \"s\"\n[api]\n{api}\n")
    }

    /// Each half-configured combination is refused at the key to fix.
    #[test]
    fn tls_keys_come_together_and_are_refused_where_written() {
        for (api, at, says) in [
            ("tls_cert_file = \"c.pem\"", "4:17", "api.tls_key_file is not"),
            ("tls_key_file = \"k.pem\"", "4:16", "api.tls_cert_file is not"),
            ("tls_client_ca_file = \"ca.pem\"", "4:22", "needs api.tls_cert_file"),
            ("tls_client_auth = \"optional\"", "4:19", "needs api.tls_client_ca_file"),
        ] {
            let e = parse(Path::new("/etc/r.toml"), &base(api)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("/etc/r.toml:{at}: ")) && e.contains(says), "{api}: {e}");
        }
        let e = parse(Path::new("/etc/r.toml"), &base("tls_client_auth = \"sometimes\"")).unwrap_err().to_string();
        assert!(e.starts_with("/etc/r.toml:4:") && e.contains("required") && e.contains("optional"), "{e}");
    }

    /// Plain HTTP is a warning off loopback only, at `listen`.
    #[test]
    fn plain_http_warns_off_loopback_only() {
        for (listen, warns) in
            [("127.0.0.1:7300", false), ("[::1]:7300", false), ("0.0.0.0:7300", true), ("10.1.2.3:7300", true)]
        {
            let c = parse(Path::new("/etc/r.toml"), &base(&format!("listen = \"{listen}\""))).unwrap();
            let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
            assert_eq!(w.len(), usize::from(warns), "{listen}: {w:?}");
            if warns {
                assert!(w[0].starts_with("/etc/r.toml:4:10: api.listen ") && w[0].contains("plain HTTP"), "{w:?}");
            }
        }
    }
}

//! `wss://` and `https://`: the certificate and key the server presents, loaded or made once
//! at start, and the TLS handshake for each client.
//!
//! rustls does TLS and parses the PEM files; rcgen makes the self-signed certificate. This
//! module only decides which certificate to use and what to tell the operator and the
//! client when something is wrong.

use std::path::Path;
use std::sync::{Arc, RwLock};

use log::{info, warn};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::Config;
use crate::error::StartError;

/// The TLS side of a server: what every client's handshake uses. Clones share it, so the
/// binary can keep one to reload the certificate while the server serves with another.
#[derive(Clone)]
pub struct Tls {
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    /// Loads the certificate and key the configuration names, or makes a self-signed pair
    /// for `localhost`, `127.0.0.1`, `::1` and `host` with `--tls-self-signed`; `None` when
    /// TLS is off. Every failure is one line naming the file and what is wrong with it, for
    /// the binary to print before it listens on anything.
    pub fn load(config: &Config, host: &str) -> Result<Option<Tls>, StartError> {
        let acceptor = match acceptor(config, host).map_err(StartError::Tls)? {
            Some(acceptor) => acceptor,
            None => return Ok(None),
        };
        Ok(Some(Tls {
            acceptor: Arc::new(RwLock::new(acceptor)),
        }))
    }

    /// Reads the certificate and key files again (certificate renewal): connections already
    /// open keep theirs, new ones get the new pair. A pair that does not load is reported
    /// and the old one kept. A self-signed certificate is not remade.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        if config.tls_self_signed {
            return Err("a self-signed certificate is not reloaded".into());
        }
        if let Some(acceptor) = acceptor(config, "")? {
            *self
                .acceptor
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = acceptor;
        }
        Ok(())
    }

    /// The acceptor for a new client's handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

/// Takes over SIGHUP at once (its default action ends the process) and returns the task
/// that answers it for as long as the process runs: with TLS, the certificate and key are
/// reloaded and the outcome logged; without, the signal is logged and ignored. Call it
/// inside the runtime, before listening; the binary spawns the task beside the server.
pub fn reload_on_hangup(
    tls: Option<Tls>,
    config: Config,
) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            match &tls {
                Some(tls) => match tls.reload(&config) {
                    Ok(()) => info!("SIGHUP: reloaded the TLS certificate and key"),
                    Err(error) => warn!("SIGHUP: keeping the current certificate: {error}"),
                },
                None => info!("SIGHUP: no TLS certificate to reload (--tls-cert); ignored"),
            }
        }
    })
}

/// The acceptor for the configured certificate, `None` when TLS is off.
fn acceptor(config: &Config, host: &str) -> Result<Option<TlsAcceptor>, String> {
    let (chain, key) = if config.tls_self_signed {
        self_signed(host, config.tls_cert_out.as_deref())?
    } else {
        match (&config.tls_cert, &config.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => {
                let chain = read_chain(cert)?;
                warn_if_expired(cert, &chain[0]);
                let key = read_key(key)?;
                (chain, key)
            }
            _ => return Err("--tls-cert and --tls-key go together".into()),
        }
    };
    info!(
        "TLS certificate SHA-256 fingerprint {}",
        fingerprint(&chain[0])
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| format!("TLS setup: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => format!(
                "--tls-cert {} and --tls-key {} do not go together: {error}; expected the \
                 private key of that certificate",
                cert.display(),
                key.display()
            ),
            _ => format!("TLS setup: {error}"),
        })?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server_config))))
}

/// The certificate chain in the PEM file `--tls-cert` names.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    const EXPECTED: &str = "expected a readable PEM file with the certificate (chain), \
                            -----BEGIN CERTIFICATE----- blocks";
    let unreadable = |error: &dyn std::fmt::Display| {
        format!("--tls-cert {}: {error}; {EXPECTED}", path.display())
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&error))?;
    if chain.is_empty() {
        return Err(unreadable(&"no PEM certificate in it"));
    }
    Ok(chain)
}

/// Warns when the certificate is expired or not yet valid: clients will refuse it, but the
/// operator may be about to replace it (and reload with SIGHUP), so it is not fatal.
fn warn_if_expired(path: &Path, certificate: &CertificateDer<'_>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return;
    };
    let validity = parsed.validity();
    if !validity.is_valid() {
        warn!(
            "{}: the certificate is valid only from {} to {}; clients will refuse it",
            path.display(),
            validity.not_before,
            validity.not_after
        );
    }
}

/// A PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key in PEM.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| {
        format!(
            "--tls-key {}: {error}; expected a readable PEM file with a PKCS#8, PKCS#1 or SEC1 \
             private key",
            path.display()
        )
    })
}

/// A certificate made now, and its key, which never leaves memory; the certificate alone is
/// written to `cert_out` for clients to trust.
fn self_signed(
    host: &str,
    cert_out: Option<&Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !names.iter().any(|name| name == host) && !host.is_empty() {
        names.push(host.to_owned());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|error| format!("cannot make a self-signed certificate: {error}"))?;
    if let Some(path) = cert_out {
        std::fs::write(path, made.cert.pem())
            .map_err(|error| format!("--tls-cert-out {}: {error}", path.display()))?;
        info!("wrote the self-signed certificate to {}", path.display());
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    Ok((vec![made.cert.der().clone()], key))
}

/// `AB:CD:...`, as browsers and `openssl x509 -fingerprint -sha256` show it.
fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

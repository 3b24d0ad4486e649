//! TLS for every component, with rustls and the `ring` provider (no OpenSSL): server and
//! client settings read from PEM files, the peer identity of a client certificate, the
//! reasons a handshake fails. Certificates for tests and the harness are minted by the
//! `certs` crate, which the distributor does not link.
//!
//! Identity: the first DNS name among a certificate's subject alternative names, else its
//! subject common name. Versions: TLS 1.3, and 1.2 with AEAD suites only (rustls's safe
//! defaults).

use crate::net::Stream;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::TlsConnector;

/// Why TLS settings could not be made, or a TLS connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds no item of the kind wanted.
    #[error("cannot read {what} from {}: {detail}", path.display())]
    Pem {
        /// What the file should hold ("certificates", "a private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the settings (a key that does not match its certificate, ...).
    #[error("TLS settings refused: {0}")]
    Config(#[from] rustls::Error),
    /// The client CA could not become a verifier.
    #[error("client CA {}: {detail}", path.display())]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {error}")]
    Handshake {
        /// With whom.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// The certificates in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |detail: String| TlsError::Pem {
        what: "certificates",
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        what: "a private key",
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The server's certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// With it, clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl ServerFiles {
    /// Reads the files into an acceptor; call again to pick up renewed files.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                        .build()
                        .map_err(|e| TlsError::ClientCa {
                            path: ca.clone(),
                            detail: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(read_certs(&self.cert)?, read_key(&self.key)?)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The files of a TLS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The CA that signed the server's certificate, PEM.
    pub ca: PathBuf,
    /// The client's own certificate and key, for mutual TLS.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry; absent: the address connected to (an
    /// IP address, which the certificate must then list).
    pub server_name: Option<String>,
}

impl ClientFiles {
    /// Reads the files into a client.
    pub fn client(&self) -> Result<Client, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(&self.ca)?);
        let config = match &self.cert_key {
            Some((cert, key)) => {
                builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        let server_name = match &self.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::ServerName(name.clone()))?,
            ),
            None => None,
        };
        Ok(Client {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// The TLS flags of a client component (loadgen, analyzer-sink): `--tls-ca` turns TLS on,
/// `--tls-cert` and `--tls-key` add a client certificate (mutual TLS). Set on the command
/// line (the harness passes the files it minted), not in profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ClientFlags {
    /// Connect over TLS, trusting this CA (PEM) to have signed the distributor's certificate.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for mutual TLS: its first DNS name (else its CN)
    /// is the client's identity.
    #[arg(long, value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the distributor's certificate must carry [default: the IP address
    /// connected to].
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl ClientFlags {
    /// The flags of a client of CA `ca` presenting `<dir>/<name>.pem` and `.key` (the
    /// layout `certs::Authority::write_leaf` writes).
    pub fn minted(ca: &Path, dir: &Path, name: &str) -> Self {
        Self {
            tls_ca: Some(ca.to_owned()),
            tls_cert: Some(dir.join(format!("{name}.pem"))),
            tls_key: Some(dir.join(format!("{name}.key"))),
            tls_server_name: None,
        }
    }

    /// The identity of `--tls-cert` (its first DNS name, else its CN), if given.
    pub fn identity(&self) -> Result<Option<String>, TlsError> {
        let Some(cert) = &self.tls_cert else {
            return Ok(None);
        };
        let certs = read_certs(cert)?;
        Ok(certs.first().and_then(identity))
    }

    /// The client, or `None` without `--tls-ca` (plain TCP).
    pub fn client(&self) -> Result<Option<Client>, TlsError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        ClientFiles {
            ca: ca.clone(),
            cert_key: self.tls_cert.clone().zip(self.tls_key.clone()),
            server_name: self.tls_server_name.clone(),
        }
        .client()
        .map(Some)
    }

    /// The command-line flags that give these settings.
    pub fn to_args(&self) -> Vec<String> {
        let path = |flag: &str, p: &Option<PathBuf>| {
            p.as_ref().map(|p| format!("--{flag}={}", p.display()))
        };
        [
            path("tls-ca", &self.tls_ca),
            path("tls-cert", &self.tls_cert),
            path("tls-key", &self.tls_key),
            self.tls_server_name
                .as_ref()
                .map(|n| format!("--tls-server-name={n}")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A TLS client's settings, ready to connect.
#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Runs the client handshake on `tcp`, connected to `addr`.
    pub async fn handshake(&self, tcp: TcpStream, addr: SocketAddr) -> Result<Stream, TlsError> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|error| TlsError::Handshake { addr, error })?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }
}

/// The identity a certificate names: its first DNS subject alternative name, else its
/// subject common name; `None` when it has neither or does not parse.
pub fn identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Some((*dns).to_owned());
            }
        }
    }
    x509.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// Why a server-side handshake failed: a small fixed set, for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// The client sent no certificate where one is required.
    NoCertificate,
    /// The client's certificate is not signed by the client CA.
    UnknownIssuer,
    /// The client's certificate has expired (or is not valid yet).
    Expired,
    /// Another certificate fault (bad encoding, wrong usage, revoked...).
    BadCertificate,
    /// The bytes are not TLS (plain TCP on a TLS port).
    NotTls,
    /// The handshake did not finish within the handshake timeout.
    Timeout,
    /// The peer closed the connection or it failed, or another TLS error.
    Other,
}

runfolder::spelled!(HandshakeFailure {
    NoCertificate => "no_certificate",
    UnknownIssuer => "unknown_issuer",
    Expired => "expired",
    BadCertificate => "bad_certificate",
    NotTls => "not_tls",
    Timeout => "timeout",
    Other => "other",
});

impl HandshakeFailure {
    /// The reason behind a failed accept.
    pub fn of(error: &std::io::Error) -> Self {
        use rustls::{CertificateError as C, Error as E};
        let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<E>()) else {
            return HandshakeFailure::Other;
        };
        match tls {
            E::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            E::InvalidCertificate(C::UnknownIssuer) => HandshakeFailure::UnknownIssuer,
            E::InvalidCertificate(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => HandshakeFailure::Expired,
            E::InvalidCertificate(_) => HandshakeFailure::BadCertificate,
            E::InvalidMessage(_) => HandshakeFailure::NotTls,
            _ => HandshakeFailure::Other,
        }
    }
}

/// A server-side handshake that failed: the reason, and the error for the log.
#[derive(Debug)]
pub struct Refused {
    /// For the metric.
    pub reason: HandshakeFailure,
    /// For the log.
    pub error: String,
}

/// Accepts a TLS connection on `tcp` within `timeout`; returns the stream and the peer's
/// identity (when it presented a certificate).
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<(Stream, Option<String>), Refused> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => Err(Refused {
            reason: HandshakeFailure::Timeout,
            error: format!(
                "the handshake did not finish within {} s",
                timeout.as_secs_f64()
            ),
        }),
        Ok(Err(e)) => Err(Refused {
            reason: HandshakeFailure::of(&e),
            error: e.to_string(),
        }),
        Ok(Ok(tls)) => {
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(identity);
            Ok((Stream::Tls(Box::new(tls.into())), identity))
        }
    }
}

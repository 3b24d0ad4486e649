//! Certificates made on the spot (rcgen): a CA and the certificates it signs, written as
//! PEM files. The harness mints one CA and one certificate per component into a run folder
//! for `tls = true` profiles; tests mint the good and the bad (expired, other CA, no name).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// rcgen refused.
    #[error("cannot make a certificate for {name:?}: {error}")]
    Rcgen {
        /// The certificate's name.
        name: String,
        /// Why.
        error: rcgen::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// A certificate authority held in memory.
#[derive(Debug)]
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server (the distributor): DNS `localhost` and IP 127.0.0.1 besides its name.
    Server,
    /// A client (an emitter, an analyzer).
    Client,
}

/// One certificate to make.
#[derive(Debug, Clone)]
pub struct Leaf<'a> {
    /// The identity: the first DNS name, and the common name.
    pub name: &'a str,
    /// Server or client.
    pub usage: Usage,
    /// Days of validity from yesterday; negative: expired that many days ago.
    pub days: i64,
    /// Put the name in a DNS SAN (true) or only in the common name (false).
    pub san: bool,
}

impl<'a> Leaf<'a> {
    /// A certificate valid for a year, its name as the first DNS SAN.
    pub fn new(name: &'a str, usage: Usage) -> Self {
        Self {
            name,
            usage,
            days: 365,
            san: true,
        }
    }
}

/// PEM text of a certificate and its key.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

fn rcgen_err(name: &str) -> impl FnOnce(rcgen::Error) -> MintError + '_ {
    move |error| MintError::Rcgen {
        name: name.to_owned(),
        error,
    }
}

impl Authority {
    /// A new CA named `name`, valid for ten years.
    pub fn new(name: &str) -> Result<Self, MintError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time_now();
        params.not_before = now - rcgen_days(1);
        params.not_after = now + rcgen_days(3650);
        let key = KeyPair::generate().map_err(rcgen_err(name))?;
        let cert = params.self_signed(&key).map_err(rcgen_err(name))?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate signed by this CA.
    pub fn issue(&self, leaf: &Leaf<'_>) -> Result<Pair, MintError> {
        let name = leaf.name;
        let mut sans = Vec::new();
        if leaf.san {
            sans.push(name.to_owned());
        }
        if leaf.usage == Usage::Server && name != "localhost" {
            sans.push("localhost".to_owned());
        }
        let mut params = CertificateParams::new(sans).map_err(rcgen_err(name))?;
        if leaf.usage == Usage::Server {
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![match leaf.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let now = time_now();
        if leaf.days >= 0 {
            params.not_before = now - rcgen_days(1);
            params.not_after = now + rcgen_days(leaf.days);
        } else {
            params.not_before = now - rcgen_days(-leaf.days + 30);
            params.not_after = now - rcgen_days(-leaf.days);
        }
        let key = KeyPair::generate().map_err(rcgen_err(name))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err(name))?;
        Ok(Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MintError> {
        write(&dir.join("ca.pem"), &self.pem)
    }

    /// Issues `leaf` and writes `<name>.pem` and `<name>.key` into `dir`; returns both paths.
    pub fn write_leaf(&self, dir: &Path, leaf: &Leaf<'_>) -> Result<(PathBuf, PathBuf), MintError> {
        let pair = self.issue(leaf)?;
        let cert = write(&dir.join(format!("{}.pem", leaf.name)), &pair.cert)?;
        let key = write(&dir.join(format!("{}.key", leaf.name)), &pair.key)?;
        Ok((cert, key))
    }
}

fn write(path: &Path, text: &str) -> Result<PathBuf, MintError> {
    std::fs::write(path, text).map_err(|error| MintError::Write {
        path: path.to_owned(),
        error,
    })?;
    Ok(path.to_owned())
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_days(days: i64) -> time::Duration {
    time::Duration::days(days)
}

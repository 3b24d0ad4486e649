//! A `tls = true` run: one CA and one certificate per component, minted (rcgen) into
//! `<run>/tls/`, the access file of `[security.restricted]`, and the impostor of
//! `[security.impostor]`, which tries to take over a live analyzer's id with a valid
//! certificate of its own.

use crate::profile::{LOADGEN_IDENTITY, Profile};
use bytes::BytesMut;
use certs::{Authority, Leaf, MintError, Usage};
use protocol::analyzer::{self as wire, Downstream, DownstreamDecoder, Hello};
use runfolder::ProbeOutcome;
use runfolder::names;
use runfolder::profile::IMPOSTOR;
use runfolder::rows::Probe;
use runner::framed::FramedRead;
use runner::net::Stream;
use runner::tls::ClientFlags;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long the impostor waits for the distributor's answer. A REJECT comes at once; a
/// session that was accepted says nothing until traffic comes, so silence counts as
/// accepted.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The certificates of a run.
#[derive(Debug, Clone)]
pub struct RunTls {
    dir: PathBuf,
    ca: PathBuf,
    access: Option<PathBuf>,
}

impl RunTls {
    /// Mints the CA and every certificate the profile needs into `<run>/tls/`.
    pub fn mint(run: &Path, profile: &Profile) -> anyhow::Result<Self> {
        let mut clients: Vec<&str> = profile.analyzers.iter().map(|a| a.id.as_str()).collect();
        clients.push(LOADGEN_IDENTITY);
        let security = profile.security.as_ref();
        if security.is_some_and(|s| s.impostor.is_some()) {
            clients.push(IMPOSTOR);
        }
        let restricted = security.and_then(|s| s.restricted.as_ref());
        if let Some(r) = restricted {
            clients.push(&r.identity);
        }
        // With [security], an access file: under mutual TLS it must name the analyzers
        // (none may connect otherwise): the profile's and the impostor, whose own HELLO
        // is held to a weight limit it then claims past.
        let access = security.map(|_| {
            let mut analyzers: Vec<String> = profile
                .analyzers
                .iter()
                .map(|a| format!("{:?}", a.id))
                .collect();
            analyzers.push(format!("{IMPOSTOR:?}"));
            let mut text = format!(
                "# Written by the harness for [security].\n[roles]\nanalyzers = [{}]\n\n[analyzers.max_weights]\n{IMPOSTOR:?} = {IMPOSTOR_MAX_WEIGHT}\n",
                analyzers.join(", ")
            );
            if let Some(r) = restricted {
                text.push_str(&format!(
                    "\n[emitters.{:?}]\npriorities = {:?}\n",
                    r.identity, r.priorities
                ));
            }
            text
        });
        Self::mint_for(run, &clients, access.as_deref())
    }

    /// Mints the CA, the distributor's certificate and one client certificate per name into
    /// `<run>/tls/`, and writes `access` (the access file's text) there when given.
    pub fn mint_for(run: &Path, clients: &[&str], access: Option<&str>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let dir = run.join(names::TLS_DIR);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ca = Authority::new("log-distributor run CA")?;
        let ca_path = ca.write(&dir)?;
        ca.write_leaf(&dir, &Leaf::new("distributor", Usage::Server))?;
        for name in clients {
            ca.write_leaf(&dir, &Leaf::new(name, Usage::Client))?;
        }
        let access = match access {
            Some(text) => {
                let path = dir.join("access.toml");
                std::fs::write(&path, text).map_err(|error| MintError::Write {
                    path: path.clone(),
                    error,
                })?;
                Some(path)
            }
            None => None,
        };
        Ok(Self {
            dir,
            ca: ca_path,
            access,
        })
    }

    /// Mutual TLS and the access file on the distributor's settings.
    pub fn configure(&self, c: &mut distributor::Config) {
        c.tls_cert = Some(self.dir.join("distributor.pem"));
        c.tls_key = Some(self.dir.join("distributor.key"));
        c.tls_client_ca = Some(self.ca.clone());
        c.access.clone_from(&self.access);
    }

    /// The CA every certificate of the run chains to.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The flags of the client with identity `name`.
    pub fn client(&self, name: &str) -> ClientFlags {
        ClientFlags::minted(&self.ca, &self.dir, name)
    }
}

/// The weight limit the access file sets for the impostor's own identity.
pub const IMPOSTOR_MAX_WEIGHT: f64 = 10.0;

/// The weight the impostor claims past [`IMPOSTOR_MAX_WEIGHT`].
pub const IMPOSTOR_HEAVY_WEIGHT: f64 = 1e6;

/// What a run of `[security.impostor]` tries on the analyzer port at `at`, one after the
/// other, each of which the distributor must refuse:
/// - `impostor` (its own valid certificate) says HELLO with `claims`, a live analyzer's id;
/// - the loadgen's certificate, an emitter's, says HELLO as itself;
/// - `impostor` says HELLO as itself with weight [`IMPOSTOR_HEAVY_WEIGHT`], past its limit.
///
/// Returns what the distributor did to each (`security.csv`).
pub async fn impostor(
    impostor: ClientFlags,
    emitter: ClientFlags,
    analyzer: SocketAddr,
    claims: String,
    at: Duration,
    at_s: f64,
) -> Vec<Probe> {
    tokio::time::sleep(at).await;
    let attempts = [
        (&impostor, IMPOSTOR, claims.as_str(), 1.0),
        (&emitter, LOADGEN_IDENTITY, LOADGEN_IDENTITY, 1.0),
        (&impostor, IMPOSTOR, IMPOSTOR, IMPOSTOR_HEAVY_WEIGHT),
    ];
    let mut probes = Vec::with_capacity(attempts.len());
    for (tls, identity, claims, weight) in attempts {
        let (outcome, detail) = match try_takeover(tls, analyzer, claims, weight).await {
            Ok(done) => done,
            Err(e) => (ProbeOutcome::Failed, format!("{e:#}")),
        };
        probes.push(Probe {
            ts_ns: protocol::now_ns(),
            at_s,
            identity: identity.to_owned(),
            claimed: claims.to_owned(),
            outcome,
            detail,
        });
    }
    probes
}

async fn try_takeover(
    tls: &ClientFlags,
    analyzer: SocketAddr,
    claims: &str,
    weight: f64,
) -> anyhow::Result<(ProbeOutcome, String)> {
    let client = tls.client()?;
    let mut stream = Stream::connect(analyzer, client.as_ref()).await?;
    let mut hello = BytesMut::new();
    Hello {
        version: wire::VERSION,
        acks: false,
        compression: None,
        weight,
        id: claims.to_owned(),
    }
    .encode(&mut hello)?;
    stream.write_all(&hello).await?;
    let (rd, _wr) = stream.split();
    let mut framed = FramedRead::new(
        rd,
        DownstreamDecoder::new(protocol::log::DEFAULT_MAX_FRAME),
        4096,
    );
    Ok(
        match tokio::time::timeout(ANSWER_WITHIN, framed.next()).await {
            Ok(Ok(Some(Downstream::Reject(reason)))) => (ProbeOutcome::Rejected, reason),
            Ok(Ok(Some(Downstream::Deliver(_)))) => (
                ProbeOutcome::Accepted,
                format!("DELIVER frames for {claims:?} reached the impostor"),
            ),
            Err(_) => (
                ProbeOutcome::Accepted,
                format!(
                    "no REJECT within {} s: the session was accepted",
                    ANSWER_WITHIN.as_secs()
                ),
            ),
            Ok(Ok(None)) => (ProbeOutcome::Failed, "closed without a REJECT".to_owned()),
            Ok(Err(e)) => (ProbeOutcome::Failed, e.to_string()),
        },
    )
}

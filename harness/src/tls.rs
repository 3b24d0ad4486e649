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
        // Under mutual TLS an access file must name the analyzers (none may connect
        // otherwise): the profile's, by their exact identities.
        let access = restricted.map(|r| {
            let analyzers: Vec<String> = profile
                .analyzers
                .iter()
                .map(|a| format!("{:?}", a.id))
                .collect();
            format!(
                "# Written by the harness for [security.restricted].\n[roles]\nanalyzers = [{}]\n\n[emitters.{:?}]\npriorities = {:?}\n",
                analyzers.join(", "),
                r.identity,
                r.priorities
            )
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

/// At `at`, connects to the analyzer port as the impostor and says HELLO with `claims`;
/// returns what the distributor did.
pub async fn impostor(
    tls: ClientFlags,
    analyzer: SocketAddr,
    claims: String,
    at: Duration,
    at_s: f64,
) -> Probe {
    tokio::time::sleep(at).await;
    let (outcome, detail) = match try_takeover(&tls, analyzer, &claims).await {
        Ok(done) => done,
        Err(e) => (ProbeOutcome::Failed, format!("{e:#}")),
    };
    Probe {
        ts_ns: protocol::now_ns(),
        at_s,
        identity: IMPOSTOR.to_owned(),
        claimed: claims,
        outcome,
        detail,
    }
}

async fn try_takeover(
    tls: &ClientFlags,
    analyzer: SocketAddr,
    claims: &str,
) -> anyhow::Result<(ProbeOutcome, String)> {
    let client = tls.client()?;
    let mut stream = Stream::connect(analyzer, client.as_ref()).await?;
    let mut hello = BytesMut::new();
    Hello {
        version: wire::VERSION,
        acks: false,
        compression: None,
        weight: 1.0,
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

//! TLS on the listeners, the access rules in force, and SIGHUP, which reads both again.

use super::Shared;
use crate::access::Access;
use crate::accounting::Listener;
use crate::engine::Now;
use runner::tls::{ServerFiles, TlsAcceptor};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// TLS on the listeners: the files, and the acceptors made from them (made again on
/// SIGHUP; connections open keep the one they began with). The metrics endpoint asks for
/// no client certificate: mutual TLS covers the emitter and analyzer ports.
pub(crate) struct Tls {
    pub(super) files: ServerFiles,
    /// For the emitter and analyzer ports, then for /metrics.
    acceptors: RwLock<(TlsAcceptor, TlsAcceptor)>,
    /// A client that has not finished its handshake by then is closed (`timeout`): a
    /// stalled handshake holds a connection slot and nothing else.
    pub(super) timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    pub(super) fn new(
        files: ServerFiles,
        timeout: Duration,
    ) -> Result<Self, runner::tls::TlsError> {
        let acceptors = Self::acceptors(&files)?;
        Ok(Self {
            files,
            acceptors: RwLock::new(acceptors),
            timeout,
        })
    }

    fn acceptors(files: &ServerFiles) -> Result<(TlsAcceptor, TlsAcceptor), runner::tls::TlsError> {
        let metrics = ServerFiles {
            client_ca: None,
            ..files.clone()
        };
        Ok((files.acceptor()?, metrics.acceptor()?))
    }

    pub(super) fn acceptor(&self, kind: Listener) -> TlsAcceptor {
        let a = self.acceptors.read().unwrap_or_else(|e| e.into_inner());
        match kind {
            Listener::Metrics => a.1.clone(),
            Listener::Emitter | Listener::Analyzer => a.0.clone(),
        }
    }

    /// Reads the files again.
    fn reload(&self) -> Result<(), runner::tls::TlsError> {
        let fresh = Self::acceptors(&self.files)?;
        *self.acceptors.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// The access rules in force and their generation; connections look at the generation
/// (one atomic load per read) and pick up new rules when it moves.
#[derive(Debug)]
pub(crate) struct Rules {
    path: Option<PathBuf>,
    /// Client certificates are required: an access file that names no analyzers lets
    /// none connect.
    mutual: bool,
    current: RwLock<Arc<Access>>,
    generation: AtomicU64,
}

impl Rules {
    pub(super) fn new(
        path: Option<PathBuf>,
        mutual: bool,
    ) -> Result<Self, crate::access::AccessError> {
        let access = match &path {
            Some(p) => Self::load(p, mutual)?,
            None => Access::default(),
        };
        Ok(Self {
            path,
            mutual,
            current: RwLock::new(Arc::new(access)),
            generation: AtomicU64::new(0),
        })
    }

    /// Reads the file; under mutual TLS, without `roles.analyzers`, no analyzer may connect
    /// (said in the log, as the way to let them in).
    fn load(path: &std::path::Path, mutual: bool) -> Result<Access, crate::access::AccessError> {
        let mut access = Access::load(path)?;
        if mutual && access.deny_unlisted_analyzers() {
            tracing::warn!(file = %path.display(), "the access file names no analyzers and client certificates are required: no identity may connect as an analyzer; list them in [roles] analyzers = [...]");
        }
        Ok(access)
    }

    /// The generation in force.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The rules in force, with their generation.
    pub(crate) fn current(&self) -> (u64, Arc<Access>) {
        let rules = self.current.read().unwrap_or_else(|e| e.into_inner());
        (self.generation(), Arc::clone(&rules))
    }

    fn replace(&self, access: Access) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// On SIGHUP: reads the TLS files and the access file again. A file that cannot be used
/// leaves what is in force and says why; analyzers the new rules refuse are ended.
pub(super) async fn reload_loop(shared: Arc<Shared>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: TLS files and access rules load at start only");
            return;
        }
    };
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = stop.cancelled() => return,
        }
        reload(&shared);
    }
}

/// Reads the TLS files and the access file again (what SIGHUP does).
pub(crate) fn reload(shared: &Shared) {
    if let Some(tls) = &shared.tls {
        match tls.reload() {
            Ok(()) => {
                tracing::info!(cert = %tls.files.cert.display(), "SIGHUP: TLS certificate and key reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS files not reloaded; the ones in force stay")
            }
        }
    }
    let Some(path) = &shared.access.path else {
        if shared.tls.is_none() {
            tracing::info!("SIGHUP: no TLS files or access file to reload");
        }
        return;
    };
    match Rules::load(path, shared.access.mutual) {
        Ok(access) => {
            let (emitters, analyzers, emitter_role, max_weights) = access.rules();
            let allowed = access.clone();
            shared.access.replace(access);
            let revoked = shared.with(|c| c.revoke(|id| allowed.analyzer_allowed(id), Now::read()));
            tracing::info!(file = %path.display(), emitter_rules = emitters, analyzer_patterns = analyzers, emitter_patterns = emitter_role, max_weights, ?revoked, "SIGHUP: access rules reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: access file refused; the rules in force stay")
        }
    }
}

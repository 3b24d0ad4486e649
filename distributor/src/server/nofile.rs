//! File descriptors: the emitter cap is sized below the process's limit, so that analyzers,
//! /metrics and the stats file still get descriptors while emitters hold every one they may.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit, and returns the emitter
/// connection cap: `wanted`, or less when the limit leaves too few descriptors beside a
/// reserve for up to `analyzers` analyzer sessions, /metrics and the distributor's own
/// files (half of the limit at most).
pub(super) fn emitter_cap(wanted: usize, analyzers: usize) -> usize {
    let limit = match raise() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit (RLIMIT_NOFILE); emitter connections are not capped by it");
            return wanted;
        }
    };
    let cap = cap_for(wanted, analyzers, limit);
    if cap < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            emitter_cap = cap,
            "the open-files limit leaves room for fewer emitter connections than --max-connections; raise it (ulimit -n, LimitNOFILE=) to allow more"
        );
    }
    cap
}

/// Raises the soft limit to the hard one; the soft limit now.
fn raise() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}

/// Descriptors kept for everything but emitters, and the emitter cap that leaves them.
fn cap_for(wanted: usize, analyzers: usize, limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // Analyzer sessions, a few dozen for /metrics scrapes, the listeners, the stats file
    // and the runtime's own (epoll, eventfd, stdio).
    let reserve = analyzers.saturating_add(64).min(limit / 2);
    wanted.min(limit - reserve).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_comes_off_the_limit() {
        assert_eq!(cap_for(10_000, 1024, 20_000), 10_000);
        assert_eq!(cap_for(10_000, 1024, 4096), 4096 - 1088);
        assert_eq!(cap_for(10_000, 1024, 256), 128, "half kept at most");
        assert_eq!(cap_for(10_000, 1024, u64::MAX), 10_000);
        assert_eq!(cap_for(10_000, 1024, 1), 1);
    }
}

//! The standard process series every Prometheus exporter has (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`) and `distributor_build_info{version,commit}`, read at
//! scrape time from the kernel (getrusage, `/proc/self/status`, `/proc/self/fd`,
//! getrlimit), never under the engine's lock.
//!
//! The start time is taken when the process starts ([`record_start`]) rather than from
//! `/proc/self/stat` and the boot time in `/proc/stat`: the shipped systemd unit's
//! `ProcSubset=pid` hides `/proc/stat`.

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static START: OnceLock<f64> = OnceLock::new();

/// Notes the process's start time (seconds since the Unix epoch); the first call counts.
/// [`crate::server::run`] calls it first thing.
pub(crate) fn record_start() -> f64 {
    *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    })
}

/// The process's figures at one moment; a figure the kernel would not give is left out of
/// /metrics rather than shown as 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time: f64,
}

impl ProcessStats {
    /// Reads the figures now.
    pub(crate) fn read() -> Self {
        let cpu_seconds = getrusage(UsageWho::RUSAGE_SELF).ok().map(|u| {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(u.user_time()) + secs(u.system_time())
        });
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| vm_rss_bytes(&s));
        // The directory's own descriptor, open while it is read, is not counted.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| (d.count() as u64).saturating_sub(1));
        let max_fds = getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft);
        Self {
            cpu_seconds,
            resident_bytes,
            open_fds,
            max_fds,
            start_time: record_start(),
        }
    }
}

/// `VmRSS:` of `/proc/self/status` (in kB there), in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// [`ProcessStats`] and the build's version and commit as a collector.
#[derive(Debug)]
pub(crate) struct ProcessCollector(pub ProcessStats);

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = &self.0;
        if let Some(cpu) = p.cpu_seconds {
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes.map(|b| b as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds.map(|n| n as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Some(p.start_time),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "distributor_build_info",
            "1, labelled with the version and the git commit of the build.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", runner::COMMIT),
        ];
        ConstGauge::new(1).encode(m.encode_family(&labels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        record_start();
        let p = ProcessStats::read();
        assert!(p.cpu_seconds.is_some_and(|c| c > 0.0), "{p:?}");
        // A test binary is more than 1 MiB resident and has stdin, stdout and stderr.
        assert!(p.resident_bytes.is_some_and(|b| b > 1 << 20), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3), "{p:?}");
        assert!(p.max_fds.is_some_and(|n| n >= p.open_fds.unwrap()), "{p:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time <= now && p.start_time > now - 3600.0, "{p:?}");
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tdistributor\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None);
    }
}

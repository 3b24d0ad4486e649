//! A real Prometheus beside a run (`harness PROFILE --prometheus`): Debian's `prometheus`
//! from PATH, scraping the distributor every second with the project's alert rules
//! (`deploy/prometheus/alerts.yml`, built into the harness) loaded, its data in
//! `<run>/prometheus/`. At the end the harness asks it which alerts fired and when, and
//! writes `alerts.csv`.
//!
//! The HTTP client here is a page of code over a TCP stream (HTTP/1.0, one request per
//! connection): the Prometheus API is a handful of GETs, not worth an HTTP crate's build.

use crate::procs::{Binary, Component, free_port};
use anyhow::Context as _;
use runfolder::rows::Alert;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The alert rules every run loads, as the repository has them.
pub const ALERT_RULES: &str = include_str!("../../deploy/prometheus/alerts.yml");

/// How often Prometheus scrapes and evaluates rules in a run.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` from `addr` (HTTP/1.0): the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer within 10 s"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET http://{addr}{path}: no HTTP header in the answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET http://{addr}{path}: bad status line {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    component: Component,
    /// Its HTTP API.
    pub addr: SocketAddr,
    /// Its folder: configuration, rules, data, log.
    pub dir: PathBuf,
}

/// `prometheus` from PATH, or an error with the install command.
pub fn binary() -> anyhow::Result<PathBuf> {
    Binary::Prometheus.path()
}

impl Prometheus {
    /// Writes `prometheus.yml` and `alerts.yml` into `dir` (created), starts Prometheus
    /// scraping `target` as job `distributor` (over HTTPS, trusting `tls_ca`, when given),
    /// and waits until it is ready.
    pub async fn start(
        dir: &Path,
        target: SocketAddr,
        tls_ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("alerts.yml"), ALERT_RULES)
            .with_context(|| format!("cannot write {}", dir.join("alerts.yml").display()))?;
        let every = format!("{}s", INTERVAL.as_secs());
        let https = match tls_ca {
            // Prometheus reads a relative path from its config file's folder.
            Some(ca) => format!(
                "    scheme: https\n    tls_config:\n      ca_file: \"{}\"\n",
                std::path::absolute(ca)?.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "# Written by the harness: scrape the run's distributor every {every}, with the alert rules.\n\
global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n\
rule_files:\n  - alerts.yml\n\
scrape_configs:\n  - job_name: distributor\n{https}    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut component = Component::new(
            "prometheus",
            Binary::Prometheus,
            vec![
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                "--log.level=warn".to_owned(),
            ],
            dir.join("prometheus.log"),
        );
        component.start()?;
        let p = Self {
            component,
            addr,
            dir: dir.to_owned(),
        };
        p.wait_ready(Duration::from_secs(30)).await?;
        Ok(p)
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http_get(self.addr, "/-/ready").await {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "Prometheus did not get ready within {:.0} s; see {}",
                timeout.as_secs_f64(),
                self.dir.join("prometheus.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a query API call (`/api/v1/query?...`), returning `data` of a successful answer.
    pub async fn api(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = http_get(self.addr, path_and_query).await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{path_and_query}: HTTP {status}, not JSON: {body:.200}"))?;
        anyhow::ensure!(
            v["status"] == "success",
            "{path_and_query}: HTTP {status}: {} {}",
            v["errorType"],
            v["error"]
        );
        Ok(v["data"].clone())
    }

    /// An instant query now: the result vector.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let data = self
            .api(&format!("/api/v1/query?query={}", url_encode(promql)))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alerts that fired between `start_ns` and `end_ns`, one row per firing interval,
    /// from the `ALERTS` series at the evaluation interval. `run_start_ns` anchors the
    /// `at_s` columns (the harness: when the load started, as in `events.csv`).
    pub async fn alerts(
        &self,
        start_ns: u64,
        end_ns: u64,
        run_start_ns: u64,
    ) -> anyhow::Result<Vec<Alert>> {
        let step = INTERVAL.as_secs_f64();
        let secs = |ns: u64| ns as f64 / 1e9;
        let data = self
            .api(&format!(
                "/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={step}",
                url_encode("ALERTS{alertstate=\"firing\"}"),
                secs(start_ns),
                secs(end_ns)
            ))
            .await?;
        let mut out = Vec::new();
        for series in data["result"].as_array().cloned().unwrap_or_default() {
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            if let Some(m) = series["metric"].as_object() {
                for (k, v) in m {
                    labels.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                }
            }
            let alert = labels.remove("alertname").unwrap_or_default();
            for k in ["__name__", "alertstate"] {
                labels.remove(k);
            }
            let label_text = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let times: Vec<f64> = series["values"]
                .as_array()
                .map(|vs| vs.iter().filter_map(|p| p[0].as_f64()).collect())
                .unwrap_or_default();
            for (first, last) in intervals(&times, step) {
                let ns = |s: f64| (s * 1e9) as u64;
                // Still firing at the last step: not resolved within the run.
                let resolved_ns = (last + step < secs(end_ns)).then(|| ns(last + step));
                out.push(Alert {
                    alert: alert.clone(),
                    labels: label_text.clone(),
                    fired_ns: ns(first),
                    fired_at_s: first - secs(run_start_ns),
                    resolved_ns,
                    resolved_at_s: resolved_ns.map(|r| secs(r) - secs(run_start_ns)),
                });
            }
        }
        out.sort_by_key(|a| a.fired_ns);
        Ok(out)
    }

    /// The command line it was started with (for the run's manifest).
    pub fn command_lines(&self) -> &[String] {
        &self.component.command_lines
    }

    /// Stops Prometheus.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.component
            .stop(Duration::from_secs(10))
            .await
            .map(|_| ())
    }
}

/// Runs of consecutive sample times (at most 1.5 steps apart) as (first, last).
fn intervals(times: &[f64], step: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for &t in times {
        match out.last_mut() {
            Some((_, last)) if t - *last <= 1.5 * step => *last = t,
            _ => out.push((t, t)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            url_encode("ALERTS{alertstate=\"firing\"}"),
            "ALERTS%7Balertstate%3D%22firing%22%7D"
        );
        assert_eq!(url_encode("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn firing_samples_make_intervals() {
        assert_eq!(
            intervals(&[10.0, 11.0, 12.0, 20.0, 21.0], 1.0),
            vec![(10.0, 12.0), (20.0, 21.0)]
        );
        assert!(intervals(&[], 1.0).is_empty());
    }

    #[test]
    fn the_built_in_rules_are_the_repositorys() {
        assert!(ALERT_RULES.contains("alert: AnalyzerDown"));
    }
}

//! `--payload text`: filler that reads like people's logs, so that compression (PROTOCOL.md
//! §7) meets data like real logs rather than random bytes.
//!
//! Each message is one log line of one of four kinds, in the proportions of a busy web
//! service's logs: an access log line (40%: client address, user, time, method, path,
//! status, size, referer, user agent, response time), an application line (35%: time,
//! level, thread, logger, a sentence, ids, a duration), a JSON line (15%) and a daemon line
//! (10%: program, pid, a sentence, an address and port). Client addresses, user ids and
//! object ids come from pools with the skew real traffic has (a few make most of it);
//! request and trace ids, sizes, durations and ports are drawn fresh for every line;
//! words come from a vocabulary of 160, statuses and levels skewed as well (mostly 200
//! and INFO). The line is extended with
//! `key=value` pairs and words, then cut, to the exact length drawn (log-normal, as for
//! random filler). Times are the message's own `sent_ns`.
//!
//! The bytes are printable ASCII without a trailing space and never contain `LDT1`, so a
//! line can end a text probe (§4) as it is. Same seed, same `sent_ns`, same bytes.

use rand::RngExt;
use rand::rngs::SmallRng;

const WORDS: &[&str] = &[
    "request",
    "response",
    "session",
    "user",
    "account",
    "order",
    "payment",
    "invoice",
    "cart",
    "item",
    "product",
    "catalog",
    "search",
    "query",
    "index",
    "cache",
    "hit",
    "miss",
    "expired",
    "refreshed",
    "token",
    "login",
    "logout",
    "failed",
    "succeeded",
    "retry",
    "timeout",
    "connection",
    "pool",
    "database",
    "replica",
    "primary",
    "shard",
    "queue",
    "worker",
    "job",
    "scheduled",
    "started",
    "finished",
    "completed",
    "aborted",
    "error",
    "warning",
    "notice",
    "config",
    "reloaded",
    "loaded",
    "file",
    "upload",
    "download",
    "image",
    "thumbnail",
    "resize",
    "stream",
    "chunk",
    "buffer",
    "flush",
    "write",
    "read",
    "disk",
    "quota",
    "limit",
    "rate",
    "exceeded",
    "throttled",
    "allowed",
    "denied",
    "permission",
    "role",
    "admin",
    "guest",
    "api",
    "client",
    "server",
    "upstream",
    "downstream",
    "proxy",
    "gateway",
    "route",
    "handler",
    "middleware",
    "validation",
    "invalid",
    "missing",
    "field",
    "value",
    "header",
    "body",
    "payload",
    "json",
    "parse",
    "serialize",
    "encode",
    "decode",
    "compress",
    "checksum",
    "mismatch",
    "verified",
    "signature",
    "certificate",
    "renewed",
    "handshake",
    "tls",
    "dns",
    "resolve",
    "lookup",
    "address",
    "port",
    "socket",
    "closed",
    "opened",
    "reset",
    "peer",
    "remote",
    "local",
    "node",
    "cluster",
    "leader",
    "follower",
    "election",
    "heartbeat",
    "lease",
    "lock",
    "acquired",
    "released",
    "contention",
    "latency",
    "slow",
    "fast",
    "p99",
    "metrics",
    "exported",
    "scrape",
    "alert",
    "fired",
    "resolved",
    "deploy",
    "rollout",
    "version",
    "migration",
    "applied",
    "pending",
    "backup",
    "snapshot",
    "restore",
    "email",
    "sent",
    "delivered",
    "bounced",
    "notification",
    "webhook",
    "callback",
    "event",
    "published",
    "consumed",
    "offset",
    "commit",
    "transaction",
    "rollback",
    "deadlock",
    "detected",
    "garbage",
    "collection",
    "heap",
    "memory",
    "cpu",
];
const RESOURCES: &[&str] = &[
    "users", "orders", "items", "products", "carts", "payments", "sessions", "search", "images",
    "reports", "accounts", "invoices", "events", "health", "metrics", "static",
];
const EXTENSIONS: &[&str] = &["", "", "", ".json", ".html", ".css", ".js", ".png"];
const METHODS: &[(&str, u32)] = &[
    ("GET", 70),
    ("POST", 18),
    ("PUT", 5),
    ("DELETE", 3),
    ("PATCH", 2),
    ("HEAD", 2),
];
const STATUSES: &[(u16, u32)] = &[
    (200, 72),
    (201, 4),
    (204, 3),
    (301, 2),
    (302, 3),
    (304, 6),
    (400, 2),
    (401, 2),
    (403, 1),
    (404, 3),
    (429, 1),
    (500, 1),
    (502, 0),
    (503, 0),
];
const LEVELS: &[(&str, u32)] = &[("INFO", 70), ("DEBUG", 15), ("WARN", 10), ("ERROR", 5)];
const LOGGERS: &[&str] = &[
    "com.shop.api.OrderController",
    "com.shop.db.ConnectionPool",
    "com.shop.auth.TokenService",
    "com.shop.cache.RedisCache",
    "com.shop.jobs.Scheduler",
    "com.shop.http.Client",
    "org.eclipse.jetty.server.Server",
    "io.netty.channel.EventLoop",
];
const DAEMONS: &[&str] = &[
    "sshd",
    "nginx",
    "postfix/smtpd",
    "cron",
    "systemd",
    "kernel",
    "dockerd",
    "kubelet",
];
const SERVICES: &[&str] = &[
    "checkout", "catalog", "auth", "search", "billing", "gateway", "media", "notify",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "kube-probe/1.29",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes log-like text lines of a given length.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextGen;

impl TextGen {
    /// Appends exactly `len` bytes of one log line stamped `sent_ns` to `out`.
    pub fn fill(&self, rng: &mut SmallRng, sent_ns: u64, len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let mut line = String::with_capacity(len + 64);
        match rng.random_range(0..100u32) {
            0..40 => access(rng, sent_ns, &mut line),
            40..75 => application(rng, sent_ns, &mut line),
            75..90 => json(rng, sent_ns, &mut line),
            _ => daemon(rng, &mut line),
        }
        while line.len() < len {
            line.push(' ');
            if rng.random_bool(0.3) {
                line.push_str(pick(rng, WORDS));
                line.push('=');
                push_value(rng, &mut line);
            } else {
                line.push_str(pick(rng, WORDS));
            }
        }
        line.truncate(len);
        out.extend_from_slice(line.as_bytes());
        // A cut may leave a space (or '=') at the end: a word character instead, so the
        // line can end a text probe.
        if let Some(last) = out[start..].last_mut()
            && *last == b' '
        {
            *last = b'x';
        }
    }
}

fn pick<'a>(rng: &mut SmallRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn weighted<T: Copy>(rng: &mut SmallRng, from: &[(T, u32)]) -> T {
    let total: u32 = from.iter().map(|(_, w)| w).sum();
    let mut u = rng.random_range(0..total);
    for (v, w) in from {
        if u < *w {
            return *v;
        }
        u -= w;
    }
    from[0].0
}

fn push_value(rng: &mut SmallRng, line: &mut String) {
    use std::fmt::Write as _;
    // Mostly values that recur (small numbers, words, pooled ids); now and then a fresh
    // id, as a span or a correlation id is.
    let _ = match rng.random_range(0..10u32) {
        0..3 => write!(line, "{}", skewed(rng, 1000)),
        3..6 => write!(line, "{}", pick(rng, WORDS)),
        6..8 => write!(
            line,
            "{}.{}",
            rng.random_range(0..100u32),
            rng.random_range(0..10u32)
        ),
        8 => write!(line, "{}", pick(rng, SERVICES)),
        _ => write!(line, "{:08x}", rng.random::<u32>()),
    };
}

/// An index into a pool of `n`, skewed as real traffic is (a few clients, users and
/// objects make most of it): the cube of a uniform draw, so the first 10% of the pool
/// take about 46% of the draws.
fn skewed(rng: &mut SmallRng, n: u32) -> u32 {
    let u: f64 = rng.random();
    ((u * u * u) * f64::from(n)) as u32
}

fn address(rng: &mut SmallRng, line: &mut String) {
    use std::fmt::Write as _;
    // A pool of 4,096 clients, most of them in a few networks (as behind a load
    // balancer), the rest anywhere; each pool index is always the same address.
    let i = skewed(rng, 4096);
    let h = i.wrapping_mul(2_654_435_761);
    let _ = match i % 3 {
        0 => write!(
            line,
            "10.{}.{}.{}",
            h >> 30,
            (h >> 20) % 32,
            1 + (h >> 8) % 254
        ),
        1 => write!(line, "192.168.{}.{}", (h >> 24) % 8, 1 + (h >> 8) % 254),
        _ => write!(
            line,
            "{}.{}.{}.{}",
            1 + (h >> 24) % 223,
            (h >> 16) % 256,
            (h >> 8) % 256,
            1 + h % 254
        ),
    };
}

fn path(rng: &mut SmallRng, line: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "/api/v{}/{}",
        rng.random_range(1..3u32),
        pick(rng, RESOURCES)
    );
    if rng.random_bool(0.6) {
        let _ = write!(line, "/{}", 1 + skewed(rng, 100_000));
    }
    if rng.random_bool(0.3) {
        let _ = write!(line, "/{}", pick(rng, RESOURCES));
    }
    line.push_str(pick(rng, EXTENSIONS));
    if rng.random_bool(0.25) {
        let _ = write!(
            line,
            "?page={}&limit={}",
            rng.random_range(1..50u32),
            [10, 20, 50, 100][rng.random_range(0..4)]
        );
    }
}

fn sentence(rng: &mut SmallRng, line: &mut String) {
    for i in 0..rng.random_range(4..12u32) {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(pick(rng, WORDS));
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `2026-12-02T06:03:00.123Z`, or `02/Dec/2026:06:03:00 +0000` (`clf`).
pub(crate) fn timestamp(ns: u64, clf: bool, line: &mut String) {
    use std::fmt::Write as _;
    let secs = (ns / 1_000_000_000) as i64;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (t / 3600, t / 60 % 60, t % 60);
    let _ = if clf {
        write!(
            line,
            "{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} +0000",
            MONTHS[(m - 1) as usize]
        )
    } else {
        write!(
            line,
            "{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
            ns / 1_000_000 % 1000
        )
    };
}

fn access(rng: &mut SmallRng, ns: u64, line: &mut String) {
    use std::fmt::Write as _;
    address(rng, line);
    if rng.random_bool(0.8) {
        line.push_str(" - - [");
    } else {
        let _ = write!(line, " - user{} [", 1 + skewed(rng, 5000));
    }
    timestamp(ns, true, line);
    let _ = write!(line, "] \"{} ", weighted(rng, METHODS));
    path(rng, line);
    let _ = write!(
        line,
        " HTTP/1.1\" {} {} \"https://shop.example.com/{}\" \"{}\" rt={}.{:03}",
        weighted(rng, STATUSES),
        rng.random_range(0..50_000u32),
        pick(rng, RESOURCES),
        pick(rng, AGENTS),
        rng.random_range(0..2u32),
        rng.random_range(0..1000u32)
    );
}

fn application(rng: &mut SmallRng, ns: u64, line: &mut String) {
    use std::fmt::Write as _;
    timestamp(ns, false, line);
    let _ = write!(
        line,
        " {:<5} [worker-{}] {}: ",
        weighted(rng, LEVELS),
        rng.random_range(0..32u32),
        pick(rng, LOGGERS)
    );
    sentence(rng, line);
    let _ = write!(
        line,
        " user_id={} request_id={:016x} duration_ms={}",
        1 + skewed(rng, 200_000),
        rng.random::<u64>(),
        rng.random_range(0..3000u32)
    );
}

fn json(rng: &mut SmallRng, ns: u64, line: &mut String) {
    use std::fmt::Write as _;
    line.push_str("{\"ts\":\"");
    timestamp(ns, false, line);
    let _ = write!(
        line,
        "\",\"level\":\"{}\",\"service\":\"{}\",\"msg\":\"",
        weighted(rng, LEVELS).to_ascii_lowercase(),
        pick(rng, SERVICES)
    );
    sentence(rng, line);
    line.push_str("\",\"path\":\"");
    path(rng, line);
    let _ = write!(
        line,
        "\",\"status\":{},\"latency_ms\":{},\"trace_id\":\"{:016x}{:016x}\"}}",
        weighted(rng, STATUSES),
        rng.random_range(0..2000u32),
        rng.random::<u64>(),
        rng.random::<u64>()
    );
}

fn daemon(rng: &mut SmallRng, line: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{}[{}]: ",
        pick(rng, DAEMONS),
        rng.random_range(100..65_000u32)
    );
    sentence(rng, line);
    line.push_str(" from ");
    address(rng, line);
    let _ = write!(line, " port {}", rng.random_range(1024..65_535u32));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn lines(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                TextGen.fill(
                    &mut rng,
                    1_764_655_380_000_000_000 + i as u64 * 1_000_000,
                    20 + i * 37 % 900,
                    &mut out,
                );
                out
            })
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_and_the_exact_length() {
        assert_eq!(lines(5, 300), lines(5, 300));
        assert_ne!(lines(5, 300), lines(6, 300));
        for (i, l) in lines(1, 500).iter().enumerate() {
            assert_eq!(l.len(), 20 + i * 37 % 900);
            protocol::probe::text::check_filler(l).unwrap();
            assert!(!l.windows(4).any(|w| w == b"LDT1"));
        }
    }

    #[test]
    fn timestamps_are_the_calendar() {
        let mut s = String::new();
        // 2026-12-02T06:03:00.123Z
        timestamp(1_796_191_380_123_000_000, false, &mut s);
        s.push(' ');
        timestamp(1_796_191_380_123_000_000, true, &mut s);
        s.push(' ');
        timestamp(951_782_400_000_000_000, false, &mut s);
        assert_eq!(
            s,
            "2026-12-02T06:03:00.123Z 02/Dec/2026:06:03:00 +0000 2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn lines_look_like_logs() {
        let all: Vec<String> = lines(3, 400)
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        let has = |needle: &str| all.iter().any(|l| l.contains(needle));
        assert!(has("HTTP/1.1\" 200 ") && has("Mozilla/5.0") && has("/api/v"));
        assert!(has(" INFO  [worker-") && has("{\"ts\":\"2025-12-02T06:0"));
        assert!(has(" port ") && has("request_id="));
    }
}

//! The `[limits]` config keys: the listeners' abuse limits (head and body deadlines,
//! connection caps) and the failed-authentication back-off (mandate-http throttle.rs).
//! Each has a safe default; docs/running.md#abuse-limits lists them.

use std::time::Duration;

use mandate_http::throttle::{Cidr, Settings};

/// The keys, as `config.rs` lists its own.
pub const KEYS: &[&str] = &[
    "limits.header_read_timeout_secs",
    "limits.body_read_timeout_secs",
    "limits.max_connections",
    "limits.auth_failures_free",
    "limits.auth_source_failures_free",
    "limits.auth_backoff_base_ms",
    "limits.auth_backoff_max_secs",
    "limits.auth_forget_secs",
    "limits.auth_tracked_max",
    "limits.trusted_proxies",
];

/// The merged `[limits]`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `limits.header_read_timeout_secs` (10): how long a request head (and a TLS
    /// handshake) may take on every listener.
    pub header_read_timeout: Duration,
    /// `limits.body_read_timeout_secs` (30): how long an API request body may take to
    /// arrive whole; late, it is answered 408 (the gateway has `gateway.body_timeout_secs`).
    pub body_read_timeout: Duration,
    /// `limits.max_connections` (0, the default: a fifth of the open-file limit): the
    /// most connections open at once on each listener.
    pub max_connections: Option<usize>,
    /// `limits.auth_*`: the failed-authentication back-off.
    pub throttle: Settings,
    /// `limits.trusted_proxies` (none): the reverse proxies whose `X-Forwarded-For` gives
    /// the client's address to the back-off.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: None,
            throttle: Settings::DEFAULT,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// Applies `key` = `value` if `key` is one of [`KEYS`] (`None` otherwise); an
    /// `Err` says what the value must be.
    pub fn apply(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>> {
        let int = |lo: u64, hi: u64| value.parse::<u64>().ok().filter(|n| (lo..=hi).contains(n));
        let t = &mut self.throttle;
        Some(match key {
            "limits.header_read_timeout_secs" => match int(1, 300) {
                Some(n) => {
                    self.header_read_timeout = Duration::from_secs(n);
                    Ok(())
                }
                None => Err("must be a whole number of seconds in 1..=300"),
            },
            "limits.body_read_timeout_secs" => match int(1, 3_600) {
                Some(n) => {
                    self.body_read_timeout = Duration::from_secs(n);
                    Ok(())
                }
                None => Err("must be a whole number of seconds in 1..=3600"),
            },
            "limits.max_connections" => match int(0, 1_000_000) {
                Some(n) => {
                    self.max_connections = usize::try_from(n).ok().filter(|n| *n > 0);
                    Ok(())
                }
                None => {
                    Err("must be a whole number in 0..=1000000 (0: a fifth of the open-file limit)")
                }
            },
            "limits.auth_failures_free" => {
                match int(0, 1_000).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => {
                        t.free_per_client = n;
                        Ok(())
                    }
                    None => Err("must be a whole number in 0..=1000"),
                }
            }
            "limits.auth_source_failures_free" => {
                match int(0, 100_000).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => {
                        t.free_per_source = n;
                        Ok(())
                    }
                    None => Err("must be a whole number in 0..=100000"),
                }
            }
            "limits.auth_backoff_base_ms" => match int(1, 60_000) {
                Some(n) => {
                    t.base = Duration::from_millis(n);
                    Ok(())
                }
                None => Err("must be a whole number of milliseconds in 1..=60000"),
            },
            "limits.auth_backoff_max_secs" => match int(1, 86_400) {
                Some(n) => {
                    t.max = Duration::from_secs(n);
                    Ok(())
                }
                None => Err("must be a whole number of seconds in 1..=86400"),
            },
            "limits.auth_forget_secs" => match int(1, 86_400) {
                Some(n) => {
                    t.forget = Duration::from_secs(n);
                    Ok(())
                }
                None => Err("must be a whole number of seconds in 1..=86400"),
            },
            "limits.auth_tracked_max" => {
                match int(16, 10_000_000).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => {
                        t.capacity = n;
                        Ok(())
                    }
                    None => Err("must be a whole number in 16..=10000000"),
                }
            }
            "limits.trusted_proxies" => {
                let blocks: Option<Vec<Cidr>> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(Cidr::parse)
                    .collect();
                match blocks {
                    Some(b) if b.len() <= 256 => {
                        self.trusted_proxies = b;
                        Ok(())
                    }
                    _ => Err(
                        "must be a comma-separated list of at most 256 addresses or CIDR blocks \
                         (10.0.0.0/8, 2001:db8::/32, 192.0.2.1), host bits zero",
                    ),
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_takes_its_range_and_refuses_the_rest() {
        let mut c = LimitsConfig::default();
        for (k, good, bad) in [
            ("limits.header_read_timeout_secs", "3", "0"),
            ("limits.body_read_timeout_secs", "5", "3601"),
            ("limits.max_connections", "100", "-1"),
            ("limits.auth_failures_free", "2", "x"),
            ("limits.auth_source_failures_free", "7", "100001"),
            ("limits.auth_backoff_base_ms", "250", "0"),
            ("limits.auth_backoff_max_secs", "60", "86401"),
            ("limits.auth_forget_secs", "30", ""),
            ("limits.auth_tracked_max", "1000", "15"),
            (
                "limits.trusted_proxies",
                "10.0.0.0/8, 2001:db8::/32",
                "10.0.0.1/8",
            ),
        ] {
            assert_eq!(c.apply(k, good), Some(Ok(())), "{k}");
            assert!(matches!(c.apply(k, bad), Some(Err(_))), "{k} {bad}");
        }
        assert_eq!(c.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.body_read_timeout, Duration::from_secs(5));
        assert_eq!(c.max_connections, Some(100));
        assert_eq!(
            c.throttle,
            Settings {
                free_per_client: 2,
                free_per_source: 7,
                base: Duration::from_millis(250),
                max: Duration::from_secs(60),
                forget: Duration::from_secs(30),
                capacity: 1000,
            }
        );
        assert_eq!(c.apply("limits.max_connections", "0"), Some(Ok(())));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.apply("limits.nope", "1"), None);
        assert_eq!(
            c.trusted_proxies,
            [
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("2001:db8::/32").unwrap()
            ]
        );
        assert!(matches!(
            c.apply("limits.trusted_proxies", "10.0.0.0/8, proxy.example"),
            Some(Err(_))
        ));
    }
}

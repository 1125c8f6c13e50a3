//! Abuse limits at the edge (issue 25, part 4): exponential back-off for failed client
//! authentication and failed admin-token use, keyed so that an attacker's guesses slow
//! the attacker and not a legitimate client elsewhere, and the per-request body deadline.
//!
//! **What counts as a failure.** At `/oauth/token`, `/oauth/introspect` and
//! `/oauth/revoke`, every answer `invalid_client` (unknown client, wrong secret, a client
//! assertion that does not verify, no or malformed credentials, an inactive agent). On
//! every route of a guarded router ([`GuardLayer`]), a request carrying a bearer that is
//! not an agent's JWT (so it was looked up as an admin or service token) answered 401.
//!
//! **Keys.** A failure is noted under (client id claimed, source) and under the source
//! alone (client authentication); under the source alone for admin tokens (a separate
//! count: admin bearers carry no client id). The source is the socket's remote address
//! ([`Peer`]), an IPv6 address reduced to its /64 (one host commonly holds a whole /64) —
//! unless that address is one of the `trusted_proxies` ([`Cidr`]): then the client is
//! the nearest address in `X-Forwarded-For` that is not a trusted proxy
//! ([`client_address`]). INVARIANT (forwarded only by a trusted proxy): a header is
//! believed only when the socket's peer is a configured proxy, and only the entries
//! trusted proxies appended (read from the right); what a client wrote itself on the left
//! is never its source. There is deliberately **no per-client-id count
//! across sources**: it would let anyone lock a client out by guessing its secret from
//! elsewhere. Guessing spread over many sources is bounded per source, and every guess
//! still waits for an Argon2id permit; client secrets are 256-bit random.
//!
//! **Back-off.** Past `free` failures of a key, each further failure blocks the key for
//! `base · 2^(n−1)` (n = failures past `free`), at most `max`. While blocked, a request
//! under that key is refused before any secret is hashed or token looked up: 429 with
//! `Retry-After`, OAuth error `slow_down` at `/oauth/*` and problem `too_many_failures`
//! elsewhere. A refused request is no failure (it does not lengthen the wait). A success
//! as a client forgets that (client, source) key, not the source's (else an attacker
//! holding one client's secret could reset its guesses at others). A key not failed for
//! `forget` and not blocked is forgotten.
//!
//! **Memory.** At most `capacity` keys. When a new key must be noted and the map is
//! full, forgotten keys are dropped first and then, if it is still full, the keys whose
//! last failure is oldest — an eighth of the capacity at once, so that the O(n) pass
//! under the lock is paid once per `capacity / 8` new keys (counted in
//! `mandate_throttle_evictions_total`). Evicting rather than refusing new
//! keys: refusing would let a flood from many sources lock everyone else out.
//!
//! A router driven without the binary's listener (no [`Peer`]) or without this layer is
//! not throttled.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use tokio::time::Instant;

use crate::conn::Peer;
use crate::error::{ApiError, OAuthError};
use crate::extract::{bearer, looks_like_jwt};

/// The back-off limits (`limits.auth_*` config keys, docs/running.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Failures of one client id from one source before back-off starts.
    pub free_per_client: u32,
    /// Failures from one source (any client id; admin tokens counted apart) before
    /// back-off starts.
    pub free_per_source: u32,
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How long after its last failure an unblocked key is forgotten.
    pub forget: Duration,
    /// The most keys tracked at once.
    pub capacity: usize,
}

impl Settings {
    /// The defaults: 5 failures of a client from a source and 20 from a source free,
    /// then 1 s doubling up to 5 min, forgotten after 15 min, 65,536 keys (a few MiB).
    pub const DEFAULT: Self = Self {
        free_per_client: 5,
        free_per_source: 20,
        base: Duration::from_secs(1),
        max: Duration::from_secs(300),
        forget: Duration::from_secs(900),
        capacity: 65_536,
    };
}

/// The delay after `failures` failures of a key that has `free` free ones:
/// zero up to `free`, then `base · 2^(failures − free − 1)`, never over `max`.
pub fn delay(s: &Settings, free: u32, failures: u32) -> Duration {
    match failures.checked_sub(free) {
        None | Some(0) => Duration::ZERO,
        Some(over) => s.base.saturating_mul(1 << (over - 1).min(31)).min(s.max),
    }
}

/// The source a failure is counted under: the IPv4 address (also when IPv4-mapped), or
/// the IPv6 address's /64.
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// What failures are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client id (as claimed, at most 128 bytes of it) from a source.
    Client(Box<str>, IpAddr),
    /// A source's client authentications, whatever client they claim.
    Source(IpAddr),
    /// A source's admin-token uses.
    Admin(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// The failure counts of one node (in memory; a restart forgets them).
#[derive(Debug)]
pub struct Throttle {
    settings: Settings,
    // INVARIANT (bounded): never more than `settings.capacity` entries (`failed`).
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// No failures yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn free(&self, key: &Key) -> u32 {
        match key {
            Key::Client(..) => self.settings.free_per_client,
            Key::Source(_) | Key::Admin(_) => self.settings.free_per_source,
        }
    }

    /// How long the longest-blocked of `keys` stays blocked at `now`; `None` if none is.
    pub fn wait(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter()
            .filter_map(|k| map.get(k))
            .map(|e| e.blocked_until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Notes a failure under `key` at `now`; the key's delay from now on.
    pub fn failed(&self, key: Key, now: Instant) -> Duration {
        let free = self.free(&key);
        let s = self.settings;
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = s.capacity.max(1);
        if !map.contains_key(&key) && map.len() >= cap {
            map.retain(|_, e| !forgotten(&s, e, now));
            if map.len() >= cap {
                let n = map.len() + 1 - cap + cap / 8;
                evict_oldest(&mut map, n);
            }
        }
        let e = map.entry(key).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        if forgotten(&s, e, now) {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        let wait = delay(&s, free, e.failures);
        e.blocked_until = now.checked_add(wait).unwrap_or(now);
        wait
    }

    /// Forgets `key` (a success).
    pub fn succeeded(&self, key: &Key) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the `n` keys whose last failure is oldest (ties broken arbitrarily), each
/// counted as an eviction.
///
/// A full map sheds an eighth of its capacity at once ([`Throttle::failed`] asks for
/// `cap / 8` more than the one slot it needs): one O(n) pass per `cap / 8` new keys, not a
/// pass per new key under the lock while someone sprays failures from many sources.
fn evict_oldest(map: &mut HashMap<Key, Entry>, n: usize) {
    let n = n.min(map.len());
    let mut ages: Vec<Instant> = map.values().map(|e| e.last_failure).collect();
    let Some(nth) = n.checked_sub(1) else {
        return;
    };
    let (_, cutoff, _) = ages.select_nth_unstable(nth);
    let cutoff = *cutoff;
    // Everything strictly older goes; of those at the cutoff, as many as are still owed.
    let mut owed = n - map.values().filter(|e| e.last_failure < cutoff).count();
    map.retain(|_, e| {
        let keep = e.last_failure > cutoff
            || (e.last_failure == cutoff && {
                let spare = owed == 0;
                owed = owed.saturating_sub(1);
                spare
            });
        if !keep {
            mandate_service::metrics::throttle_evicted();
        }
        keep
    });
}

fn forgotten(s: &Settings, e: &Entry, now: Instant) -> bool {
    e.blocked_until <= now && now.saturating_duration_since(e.last_failure) >= s.forget
}

/// What the binary attaches to a router ([`GuardLayer`]): the throttle, the request
/// body deadline and the proxies whose `X-Forwarded-For` is believed.
#[derive(Debug)]
pub struct Abuse {
    /// The failure counts.
    pub throttle: Throttle,
    /// How long a request body may take to arrive whole (`limits.body_read_timeout_secs`).
    pub body_read_timeout: Duration,
    /// `limits.trusted_proxies`: the reverse proxies in front of this node.
    pub trusted_proxies: Vec<Cidr>,
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX` (0..=32 for IPv4, 0..=128 for IPv6); the
    /// address's bits past the prefix must be zero (a typo in a mask is refused, not
    /// widened).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max && masked(addr, prefix) == addr).then_some(Self { net: addr, prefix })
    }

    /// Whether `ip` is in this block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        ip.is_ipv4() == self.net.is_ipv4() && masked(ip, self.prefix) == self.net
    }
}

/// `ip` with the bits past `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::from((bits & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::from((bits & mask).to_be_bytes())
        }
    }
}

/// The most `X-Forwarded-For` entries read, from the right.
const MAX_FORWARDED_HOPS: usize = 16;

/// The client's address: the socket's `peer`, unless it is a trusted proxy — then the
/// nearest `X-Forwarded-For` entry (read right to left, every header's list in order)
/// that is not a trusted proxy. An entry that is not an address stops the walk at the
/// last trusted hop (a proxy that writes garbage is its own source); so do a missing
/// header and [`MAX_FORWARDED_HOPS`] trusted hops.
pub fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let mut hop = peer;
    for entry in values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .take(MAX_FORWARDED_HOPS)
    {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            return hop;
        };
        if !is_trusted(ip) {
            return ip;
        }
        hop = ip;
    }
    hop
}

/// The client's address as [`GuardLayer`] found it ([`client_address`]), when a trusted
/// proxy forwarded the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardedFor(IpAddr);

/// A request's view of the throttle: its source, when the request came through the
/// binary's listener on a guarded router.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    abuse: Arc<Abuse>,
    source: IpAddr,
}

fn seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Gate {
    pub(crate) fn of(ext: &Extensions) -> Option<Self> {
        Some(Self {
            abuse: Arc::clone(ext.get::<Arc<Abuse>>()?),
            source: source(match ext.get::<ForwardedFor>() {
                Some(ForwardedFor(ip)) => *ip,
                None => ext.get::<Peer>()?.addr.ip(),
            }),
        })
    }

    fn client_keys(&self, client: Option<&str>) -> Vec<Key> {
        let mut keys = vec![Key::Source(self.source)];
        if let Some(c) = client {
            let mut end = c.len().min(128);
            while !c.is_char_boundary(end) {
                end -= 1;
            }
            keys.push(Key::Client(
                c.get(..end).unwrap_or_default().into(),
                self.source,
            ));
        }
        keys
    }

    /// Refuses with 429 `slow_down` while `client` (as claimed) from this source, or
    /// this source, is backed off. Before any secret is checked.
    pub(crate) fn check_client(&self, client: Option<&str>) -> Result<(), OAuthError> {
        let keys = self.client_keys(client);
        match self.abuse.throttle.wait(&keys, Instant::now()) {
            None => Ok(()),
            Some(wait) => {
                mandate_service::metrics::throttled("client_auth");
                Err(OAuthError::slow_down(seconds(wait)))
            }
        }
    }

    /// Notes how a client authentication of `client` ended: `invalid_client` is a
    /// failure, an answer given after authenticating ([`Outcome::Authenticated`]) a
    /// success.
    pub(crate) fn client_outcome(&self, client: Option<&str>, outcome: Outcome) {
        let now = Instant::now();
        match outcome {
            Outcome::Failed => {
                for k in self.client_keys(client) {
                    self.abuse.throttle.failed(k, now);
                }
            }
            Outcome::Authenticated => {
                if let Some(k) = self.client_keys(client).pop().filter(|_| client.is_some()) {
                    self.abuse.throttle.succeeded(&k);
                }
            }
            Outcome::Other => {}
        }
    }
}

/// How a request that authenticates a client ended, for the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `invalid_client`.
    Failed,
    /// The client authenticated.
    Authenticated,
    /// Neither is known (refused before or for another reason).
    Other,
}

impl Outcome {
    /// `invalid_client` is a failure, a token answered a success.
    pub(crate) fn of<T>(answer: &Result<T, OAuthError>) -> Self {
        match answer {
            Ok(_) => Self::Authenticated,
            Err(e) if e.error() == "invalid_client" => Self::Failed,
            Err(_) => Self::Other,
        }
    }
}

/// Attaches [`Abuse`] to every request (for the body deadline and the client gates)
/// and throttles failed admin-token use: see the module doc. Hand-written like the
/// access log (wellknown.rs), so the hot path pays one extension insert.
#[derive(Debug, Clone)]
pub struct GuardLayer(pub Arc<Abuse>);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            abuse: Arc::clone(&self.0),
        }
    }
}

/// See [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    abuse: Arc<Abuse>,
}

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        req.extensions_mut().insert(Arc::clone(&self.abuse));
        req.extensions_mut()
            .insert(crate::unread::BodyLimit(self.abuse.body_read_timeout));
        if !self.abuse.trusted_proxies.is_empty()
            && let Some(peer) = req.extensions().get::<Peer>().map(|p| p.addr.ip())
        {
            let client = client_address(peer, req.headers(), &self.abuse.trusted_proxies);
            req.extensions_mut().insert(ForwardedFor(client));
        }
        let admin_bearer = bearer(req.headers()).is_some_and(|t| !looks_like_jwt(t));
        let gate = admin_bearer.then(|| Gate::of(req.extensions())).flatten();
        let Some(gate) = gate else {
            return Box::pin(self.inner.call(req));
        };
        let key = [Key::Admin(gate.source)];
        if let Some(wait) = gate.abuse.throttle.wait(&key, Instant::now()) {
            mandate_service::metrics::throttled("admin_token");
            let oauth = req.uri().path().starts_with("/oauth/");
            return Box::pin(async move { Ok(too_many(oauth, seconds(wait))) });
        }
        let res = self.inner.call(req);
        Box::pin(async move {
            let res = res.await?;
            if res.status() == StatusCode::UNAUTHORIZED {
                let [k] = key;
                gate.abuse.throttle.failed(k, Instant::now());
            }
            Ok(res)
        })
    }
}

/// 429 for a backed-off admin bearer: `slow_down` at `/oauth/*`, else problem+json.
fn too_many(oauth: bool, wait_secs: u64) -> Response {
    if oauth {
        return OAuthError::slow_down(wait_secs).into_response();
    }
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!("too many failed authentications from this address; retry in {wait_secs} s"),
    )
    .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    res
}

#[cfg(test)]
mod tests {
    //! The back-off arithmetic and the bounded map, with time moved by hand.

    use proptest::prelude::*;

    use super::*;

    fn settings() -> Settings {
        Settings {
            free_per_client: 2,
            free_per_source: 4,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            forget: Duration::from_secs(60),
            capacity: 8,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn delays_double_past_the_free_failures_up_to_the_cap() {
        let s = settings();
        let got: Vec<u64> = (0..=12)
            .map(|n| u64::try_from(delay(&s, 2, n).as_millis()).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                0, 0, 0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000
            ]
        );
        assert_eq!(delay(&s, 2, u32::MAX), s.max);
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            source("::ffff:127.0.0.2".parse().unwrap()),
            IpAddr::from([127, 0, 0, 2])
        );
    }

    #[test]
    fn a_blocked_key_waits_and_another_source_does_not() {
        let t = Throttle::new(settings());
        let now = Instant::now();
        let k = Key::Client("agt_x".into(), ip(1));
        for _ in 0..2 {
            assert_eq!(t.failed(k.clone(), now), Duration::ZERO);
        }
        assert_eq!(t.failed(k.clone(), now), Duration::from_millis(100));
        assert_eq!(
            t.wait(std::slice::from_ref(&k), now),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            t.wait(std::slice::from_ref(&k), now + Duration::from_millis(100)),
            None
        );
        assert_eq!(t.wait(&[Key::Client("agt_x".into(), ip(2))], now), None);
        // Forgotten after `forget` without failures.
        let later = now + Duration::from_secs(61);
        assert_eq!(t.failed(k.clone(), later), Duration::ZERO);
        t.succeeded(&k);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_map_evicts_the_oldest_and_never_grows_past_its_capacity() {
        let t = Throttle::new(settings());
        let start = Instant::now();
        for n in 0..20u8 {
            t.failed(
                Key::Source(ip(n)),
                start + Duration::from_millis(u64::from(n)),
            );
            assert!(t.len() <= 8);
        }
        // The newest eight are kept.
        let now = start + Duration::from_millis(30);
        for n in 12..20u8 {
            t.failed(Key::Source(ip(n)), now);
            t.failed(Key::Source(ip(n)), now);
            t.failed(Key::Source(ip(n)), now);
            assert!(t.wait(&[Key::Source(ip(n))], now).is_none(), "{n}: 4 free");
        }
        assert_eq!(t.len(), 8);
    }

    /// A full map sheds the oldest eighth of its capacity at once, then takes new keys
    /// without another pass until it is full again.
    #[test]
    fn a_full_map_sheds_its_oldest_eighth_at_once() {
        let t = Throttle::new(Settings {
            capacity: 64,
            ..settings()
        });
        let start = Instant::now();
        let at = |n: u16| start + Duration::from_millis(u64::from(n));
        let key = |n: u16| Key::Source(IpAddr::from([10, 0, (n >> 8) as u8, n as u8]));
        for n in 0..64 {
            t.failed(key(n), at(n));
        }
        assert_eq!(t.len(), 64);
        // The 65th key: the 9 oldest go (one slot and an eighth), it comes in.
        t.failed(key(64), at(64));
        assert_eq!(t.len(), 56);
        let held = |n: u16| t.entries.lock().unwrap().contains_key(&key(n));
        assert!((0..9).all(|n| !held(n)), "the oldest went");
        assert!((9..=64).all(held), "the rest stayed");
        // Eight more fit without evicting anything.
        for n in 65..73 {
            t.failed(key(n), at(n));
        }
        assert_eq!(t.len(), 64);
        assert!(held(9));
        // Ties at the cutoff: only as many as owed go.
        let t = Throttle::new(Settings {
            capacity: 16,
            ..settings()
        });
        for n in 0..16 {
            t.failed(key(n), start);
        }
        t.failed(key(16), start);
        assert_eq!(t.len(), 16 - 3 + 1);
    }

    #[test]
    fn cidrs_parse_strictly_and_match_their_block() {
        let c = |s: &str| Cidr::parse(s);
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let ten = c("10.0.0.0/8").unwrap();
        assert!(ten.contains(a("10.200.1.1")));
        assert!(ten.contains(a("::ffff:10.1.2.3")));
        assert!(!ten.contains(a("11.0.0.1")));
        assert!(!ten.contains(a("::a00:1")));
        let one = c("192.0.2.7").unwrap();
        assert!(one.contains(a("192.0.2.7")) && !one.contains(a("192.0.2.8")));
        let v6 = c("2001:db8::/32").unwrap();
        assert!(v6.contains(a("2001:db8:ffff::1")) && !v6.contains(a("2001:db9::1")));
        assert!(c("0.0.0.0/0").unwrap().contains(a("203.0.113.9")));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "/8",
            "proxy.example",
            "",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(c(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_nearest_forwarded_address_that_is_not_a_trusted_proxy() {
        use axum::http::HeaderMap;
        let trusted = [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("192.0.2.1").unwrap(),
        ];
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let from = |peer: &str, values: &[&str]| {
            client_address(a(peer), &headers(values), &trusted).to_string()
        };
        // Not from a proxy: the header is the client's own words.
        assert_eq!(from("203.0.113.5", &["198.51.100.1"]), "203.0.113.5");
        // Through one proxy; a forged entry on the left is ignored.
        assert_eq!(from("10.0.0.2", &["6.6.6.6, 198.51.100.1"]), "198.51.100.1");
        // Through two proxies, in two headers.
        assert_eq!(
            from("10.0.0.2", &["6.6.6.6, 198.51.100.1", "192.0.2.1"]),
            "198.51.100.1"
        );
        // A proxy without the header, with garbage, or all hops trusted: the last
        // trusted hop.
        assert_eq!(from("10.0.0.2", &[]), "10.0.0.2");
        assert_eq!(from("10.0.0.2", &["198.51.100.1, unknown"]), "10.0.0.2");
        assert_eq!(from("10.0.0.2", &["10.9.9.9"]), "10.9.9.9");
        assert_eq!(from("10.0.0.2", &["2001:db8::5"]), "2001:db8::5");
        // No trusted proxies: never believed.
        assert_eq!(
            client_address(a("10.0.0.2"), &headers(&["198.51.100.1"]), &[]).to_string(),
            "10.0.0.2"
        );
        // A long chain of trusted hops stops after MAX_FORWARDED_HOPS entries.
        let long = vec!["10.1.1.1"; 40].join(", ");
        assert_eq!(from("10.0.0.2", &[&format!("6.6.6.6, {long}")]), "10.1.1.1");
    }

    #[test]
    fn a_trusted_proxys_clients_are_throttled_apart() {
        use tower::{Layer as _, ServiceExt as _};
        let abuse = Arc::new(Abuse {
            throttle: Throttle::new(settings()),
            body_read_timeout: Duration::from_secs(1),
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        });
        // The inner service answers with the source the gate sees.
        let inner = tower::service_fn(|req: Request| async move {
            let g = Gate::of(req.extensions()).unwrap();
            Ok::<_, std::convert::Infallible>(g.source.to_string().into_response())
        });
        let svc = GuardLayer(Arc::clone(&abuse)).layer(inner);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seen = |peer: &str, xff: Option<&str>| {
            let mut req = Request::new(axum::body::Body::empty());
            if let Some(x) = xff {
                req.headers_mut()
                    .insert("x-forwarded-for", HeaderValue::from_str(x).unwrap());
            }
            req.extensions_mut().insert(Peer {
                addr: std::net::SocketAddr::new(peer.parse().unwrap(), 40_000),
                certificates: None,
            });
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            let body = rt
                .block_on(axum::body::to_bytes(res.into_body(), 1024))
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        };
        assert_eq!(seen("10.0.0.2", Some("198.51.100.1")), "198.51.100.1");
        assert_eq!(seen("10.0.0.2", Some("198.51.100.2")), "198.51.100.2");
        assert_eq!(seen("203.0.113.5", Some("198.51.100.1")), "203.0.113.5");
        assert_eq!(seen("10.0.0.2", None), "10.0.0.2");
    }

    /// A gate as a request through the listener and the guard layer has it.
    fn gate(abuse: &Arc<Abuse>, from: IpAddr) -> Gate {
        let mut ext = Extensions::new();
        ext.insert(Arc::clone(abuse));
        ext.insert(Peer {
            addr: std::net::SocketAddr::new(from, 40_000),
            certificates: None,
        });
        Gate::of(&ext).unwrap()
    }

    #[test]
    fn guesses_at_many_clients_slow_their_source_and_a_success_forgets_only_its_client() {
        let abuse = Arc::new(Abuse {
            throttle: Throttle::new(settings()),
            body_read_timeout: Duration::from_secs(1),
            trusted_proxies: Vec::new(),
        });
        let (attacker, owner) = (gate(&abuse, ip(1)), gate(&abuse, ip(2)));
        // Five client ids, one failure each: no client key is near its limit (2 free),
        // the source (4 free) is blocked by the fifth.
        for c in ["a", "b", "c", "d", "e"] {
            assert!(attacker.check_client(Some(c)).is_ok(), "{c}");
            attacker.client_outcome(Some(c), Outcome::Failed);
        }
        let refused = attacker.check_client(Some("f")).unwrap_err();
        assert_eq!(refused.error(), "slow_down");
        assert!(attacker.check_client(None).is_err());
        // Another source is not slowed, for any client.
        assert!(owner.check_client(Some("a")).is_ok());
        // A success forgets the (client, source) count, not the source's.
        attacker.client_outcome(Some("a"), Outcome::Authenticated);
        assert!(attacker.check_client(Some("a")).is_err());
        assert!(
            !abuse
                .throttle
                .entries
                .lock()
                .unwrap()
                .contains_key(&Key::Client("a".into(), ip(1)))
        );
    }

    proptest! {
        /// Whatever happens to a key, its wait never exceeds the cap, and a success
        /// clears it.
        #[test]
        fn a_wait_never_exceeds_the_cap_and_a_success_resets_it(
            steps in proptest::collection::vec((0u8..3, 0u64..2_000, any::<bool>()), 1..200)
        ) {
            let s = settings();
            let t = Throttle::new(s);
            let mut now = Instant::now();
            for (who, advance, success) in steps {
                now += Duration::from_millis(advance);
                let k = Key::Client("c".into(), ip(who));
                if success {
                    t.succeeded(&k);
                    prop_assert_eq!(t.wait(&[k], now), None);
                } else {
                    let d = t.failed(k.clone(), now);
                    prop_assert!(d <= s.max);
                    prop_assert!(t.wait(&[k], now).unwrap_or_default() <= s.max);
                }
                prop_assert!(t.len() <= s.capacity);
            }
        }
    }
}

//! The load client of `bench/dpop.sh` (issue 25's target: DPoP-bound `/v1/authorize` ≥
//! 0.7 × plain bearer in the same run). wrk cannot drive DPoP: every request needs a
//! fresh proof (its own `jti`, `iat` now, `ath` of the token, `htm`/`htu`), signed by
//! the client. So this program, against one running `mandate serve`:
//!
//! 1. gets two access tokens for the same agent (client credentials, client secret): a
//!    plain bearer token, and a DPoP-bound one (`cnf.jkt`) for an Ed25519 key it makes;
//! 2. for each round, each N in `--connections`, each mode (bearer, then dpop; the order
//!    flips every round so drift and warm-up hit both alike), keeps N HTTP/1.1
//!    connections open for `--duration` seconds, each sending `POST /v1/authorize`
//!    back to back: `Authorization: Bearer <token>`, or `Authorization: DPoP <token>`
//!    with a `DPoP` proof signed for that very request (Ed25519, `mandate_token::dpop::sign`);
//! 3. prints one line per run on stdout (the script's table is made from them):
//!    `mode n round req/s p50_us p99_us server_cpu_us_per_req client_cpu_us_per_req errors requests`
//!    where the CPU times are utime+stime of the server process (`--server-pid`, from
//!    `/proc`) and of this process over the run, divided by the requests answered 200.
//!
//! Fresh tokens are fetched before every run (they live five minutes). A run that gets
//! any answer but 200 counts it as an error and prints the first such answer on stderr.
//! Client and server share the machine's cores: the client's signing (one Ed25519
//! signature per DPoP request) competes with the server, which the server-side CPU
//! figures leave out.
//!
//!     cargo build --release -p mandate-http --example dpop_load
//!     target/release/examples/dpop_load --url http://127.0.0.1:PORT --client-id agt_… \
//!       --secret … --server-pid PID [--connections "16 64"] [--duration 5] [--rounds 3] \
//!       [--warmup 2] [--clk-tck 100] [--modes "bearer dpop"]
//!
//! `--modes dpop` runs DPoP alone (for `perf record` of the server under it).

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::random::OsRandom;
use mandate_token::dpop::{self, ProofClaims};
use mandate_token::keys::SigningKey;
use serde_json::Value;

/// The allocator `mandate serve` uses (as `hello.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn Error + Send + Sync>;

/// The question of `bench/http.sh` and `bench/tls.sh`: allowed by `team-reads-contacts`.
const BODY: &str = r#"{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}"#;

struct Args {
    url: String,
    client_id: String,
    secret: String,
    server_pid: u32,
    connections: Vec<usize>,
    duration: Duration,
    rounds: usize,
    warmup: Duration,
    clk_tck: f64,
    /// The modes to run (both by default; one alone for profiling the server under it).
    modes: Vec<Mode>,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        url: String::new(),
        client_id: String::new(),
        secret: String::new(),
        server_pid: 0,
        connections: vec![16, 64],
        duration: Duration::from_secs(5),
        rounds: 3,
        warmup: Duration::from_secs(2),
        clk_tck: 100.0,
        modes: vec![Mode::Bearer, Mode::Dpop],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--url" => a.url = v.trim_end_matches('/').to_owned(),
            "--client-id" => a.client_id = v,
            "--secret" => a.secret = v,
            "--server-pid" => a.server_pid = v.parse()?,
            "--connections" => {
                a.connections = v
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--duration" => a.duration = Duration::from_secs_f64(v.parse()?),
            "--rounds" => a.rounds = v.parse()?,
            "--warmup" => a.warmup = Duration::from_secs_f64(v.parse()?),
            "--clk-tck" => a.clk_tck = v.parse()?,
            "--modes" => {
                a.modes = v
                    .split_whitespace()
                    .map(|m| match m {
                        "bearer" => Ok(Mode::Bearer),
                        "dpop" => Ok(Mode::Dpop),
                        _ => Err(format!("unknown mode `{m}`")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            _ => return Err(format!("unknown flag `{flag}`").into()),
        }
    }
    if a.url.is_empty() || a.client_id.is_empty() || a.secret.is_empty() || a.server_pid == 0 {
        return Err("--url, --client-id, --secret and --server-pid are required".into());
    }
    Ok(a)
}

/// How the agent's token goes with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bearer,
    Dpop,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Dpop => "dpop",
        }
    }
}

/// The client's DPoP key and what each proof for `/v1/authorize` names.
struct Prover {
    key: SigningKey,
    /// `{issuer}/v1/authorize`.
    htu: String,
    /// A per-run prefix of every `jti`, so no two proofs of any run share one.
    jti_prefix: String,
    next: AtomicU64,
}

impl Prover {
    fn proof(&self, htu: &str, ath: Option<String>) -> Result<String, BoxError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let claims = ProofClaims {
            jti: format!("{}.{n}", self.jti_prefix),
            htm: "POST".to_owned(),
            htu: htu.to_owned(),
            iat: SystemClock.now().secs(),
            ath,
            nonce: None,
        };
        Ok(dpop::sign(&self.key, &claims)?)
    }
}

/// One kept-alive HTTP/1.1 connection.
async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when its sender is dropped (or the server closes it).
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    s: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    s.ready().await?;
    let res = s.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A fresh access token for the agent: bound to `prover`'s key when given.
async fn token(a: &Args, issuer: &str, prover: Option<&Prover>) -> Result<String, BoxError> {
    let authority = authority(&a.url)?;
    let mut s = connect(&authority).await?;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.client_id, a.secret));
    let mut req = Request::post(format!("{}/oauth/token", a.url))
        .header(header::HOST, &authority)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Basic {basic}"));
    if let Some(p) = prover {
        req = req.header("dpop", p.proof(&format!("{issuer}/oauth/token"), None)?);
    }
    let req = req.body(Full::new(Bytes::from_static(
        b"grant_type=client_credentials",
    )))?;
    let (status, body) = send(&mut s, req).await?;
    let v: Value = serde_json::from_slice(&body)?;
    let want = if prover.is_some() { "DPoP" } else { "Bearer" };
    match (
        status,
        v.get("access_token").and_then(Value::as_str),
        v.get("token_type").and_then(Value::as_str),
    ) {
        (StatusCode::OK, Some(t), Some(tt)) if tt.eq_ignore_ascii_case(want) => Ok(t.to_owned()),
        _ => Err(format!("token request ({want}) answered {status}: {v}").into()),
    }
}

fn authority(url: &str) -> Result<String, BoxError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://host:port (plain HTTP: TLS is bench/tls.sh's)")?;
    Ok(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// What one connection did during a run.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

/// The request of `mode`, with a fresh proof for DPoP.
fn authorize_request(
    url: &str,
    authority: &str,
    mode: Mode,
    token: &str,
    dpop: &(Prover, String),
) -> Result<Request<Full<Bytes>>, BoxError> {
    let req = Request::post(format!("{url}/v1/authorize"))
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json");
    let req = match mode {
        Mode::Bearer => req.header(header::AUTHORIZATION, format!("Bearer {token}")),
        Mode::Dpop => {
            let (prover, ath) = dpop;
            req.header(header::AUTHORIZATION, format!("DPoP {token}"))
                .header("dpop", prover.proof(&prover.htu, Some(ath.clone()))?)
        }
    };
    Ok(req.body(Full::new(Bytes::from_static(BODY.as_bytes())))?)
}

#[expect(
    clippy::disallowed_methods,
    reason = "a load generator's run length and latencies are monotonic durations, not Mandate time"
)]
fn instant_now() -> Instant {
    Instant::now()
}

async fn connection(
    url: Arc<str>,
    authority: Arc<str>,
    mode: Mode,
    token: Arc<str>,
    dpop: Arc<(Prover, String)>,
    until: Instant,
) -> Result<Tally, BoxError> {
    let mut s = connect(&authority).await?;
    let mut t = Tally::default();
    loop {
        let start = instant_now();
        if start >= until {
            return Ok(t);
        }
        let req = authorize_request(&url, &authority, mode, &token, &dpop)?;
        let (status, body) = send(&mut s, req).await?;
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        if status == StatusCode::OK {
            t.ok += 1;
            t.latencies_us.push(us);
        } else {
            t.errors += 1;
            if t.first_error.is_none() {
                t.first_error = Some(format!("{status} {}", String::from_utf8_lossy(&body)));
            }
        }
    }
}

/// utime + stime of process `pid` in clock ticks (all its threads).
fn cpu_ticks(pid: &str) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: read after its closing parenthesis.
    let rest = stat.rsplit_once(')').ok_or("odd /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, BoxError> {
        Ok(f.get(i).ok_or("short /proc stat")?.parse::<f64>()?)
    };
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    Ok(tick(11)? + tick(12)?)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().map_or(f64::NAN, f64::from)
}

struct Bench {
    args: Args,
    issuer: String,
    authority: Arc<str>,
    url: Arc<str>,
}

impl Bench {
    /// One run of `mode` with `n` connections for `d`; prints its line unless `label`
    /// is `warmup`.
    async fn run(&self, mode: Mode, n: usize, d: Duration, label: &str) -> Result<(), BoxError> {
        let a = &self.args;
        let key = SigningKey::generate(&OsRandom)?;
        let prover = Prover {
            key,
            htu: format!("{}/v1/authorize", self.issuer),
            jti_prefix: mandate_core::id::new_ulid(&SystemClock, &OsRandom)?,
            next: AtomicU64::new(0),
        };
        let token: Arc<str> = match mode {
            Mode::Bearer => token(a, &self.issuer, None).await?,
            Mode::Dpop => token(a, &self.issuer, Some(&prover)).await?,
        }
        .into();
        let ath = dpop::ath(&token);
        let dpop = Arc::new((prover, ath));
        let server = a.server_pid.to_string();
        let (s0, c0) = (cpu_ticks(&server)?, cpu_ticks("self")?);
        let start = instant_now();
        let until = start + d;
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(connection(
                    self.url.clone(),
                    self.authority.clone(),
                    mode,
                    token.clone(),
                    dpop.clone(),
                    until,
                ))
            })
            .collect();
        let mut all = Tally::default();
        for t in tasks {
            let t = t.await??;
            all.ok += t.ok;
            all.errors += t.errors;
            all.latencies_us.extend(t.latencies_us);
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let (s1, c1) = (cpu_ticks(&server)?, cpu_ticks("self")?);
        if label == "warmup" {
            return Ok(());
        }
        all.latencies_us.sort_unstable();
        let ok = all.ok as f64;
        let per_req = |ticks: f64| ticks * 1e6 / a.clk_tck / ok;
        let line = format!(
            "{} {n} {label} {:.1} {:.1} {:.1} {:.1} {:.1} {} {}",
            mode.name(),
            ok / secs,
            percentile(&all.latencies_us, 0.50),
            percentile(&all.latencies_us, 0.99),
            per_req(s1 - s0),
            per_req(c1 - c0),
            all.errors,
            all.ok,
        );
        eprintln!("[dpop_load] {line}");
        if let Some(e) = all.first_error {
            eprintln!("[dpop_load] first error of {} c={n}: {e}", mode.name());
        }
        println!("{line}");
        Ok(())
    }
}

async fn main_async() -> Result<(), BoxError> {
    let args = args()?;
    let authority = authority(&args.url)?;
    // The issuer names the URL every proof's `htu` starts with.
    let mut s = connect(&authority).await?;
    let req = Request::get(format!(
        "{}/.well-known/oauth-authorization-server",
        args.url
    ))
    .header(header::HOST, &authority)
    .body(Full::new(Bytes::new()))?;
    let (_, body) = send(&mut s, req).await?;
    let meta: Value = serde_json::from_slice(&body)?;
    let issuer = meta
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or("no issuer in the metadata")?
        .to_owned();
    let b = Bench {
        url: args.url.clone().into(),
        authority: authority.into(),
        issuer,
        args,
    };
    // Both modes must be allowed before anything is measured.
    for mode in [Mode::Bearer, Mode::Dpop] {
        let key = SigningKey::generate(&OsRandom)?;
        let prover = Prover {
            key,
            htu: format!("{}/v1/authorize", b.issuer),
            jti_prefix: "check".to_owned(),
            next: AtomicU64::new(0),
        };
        let t = token(&b.args, &b.issuer, (mode == Mode::Dpop).then_some(&prover)).await?;
        let ath = dpop::ath(&t);
        let mut s = connect(&b.authority).await?;
        let req = authorize_request(&b.url, &b.authority, mode, &t, &(prover, ath))?;
        let (status, body) = send(&mut s, req).await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != StatusCode::OK || v.get("decision").and_then(Value::as_str) != Some("allow") {
            return Err(format!("{} was not allowed: {status} {v}", mode.name()).into());
        }
        eprintln!("[dpop_load] {}: {v}", mode.name());
    }
    let top = b.args.connections.iter().copied().max().unwrap_or(16);
    for &mode in &b.args.modes {
        b.run(mode, top, b.args.warmup, "warmup").await?;
    }
    for round in 1..=b.args.rounds {
        for &n in &b.args.connections {
            let mut order = b.args.modes.clone();
            if round % 2 == 0 {
                order.reverse();
            }
            for mode in order {
                b.run(mode, n, b.args.duration, &round.to_string()).await?;
            }
        }
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(main_async())
}

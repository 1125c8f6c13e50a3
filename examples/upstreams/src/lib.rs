//! Sample upstreams for Mandate's gateways, as routers (the `crm-api` and `mcp-tools`
//! binaries serve them; the e2e tests serve the same routers on loopback ports): a tiny
//! CRM HTTP API ([`crm`]) and a tiny MCP tool server ([`mcp_tools`]). What they share:
//! the listen address from `--listen`, and printing what reached them — so a gateway
//! demo shows the injected credential and the `Mandate-Decision-Id`, and that the
//! agent's token never arrives.

pub mod crm;
pub mod mcp_tools;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, Uri};

/// Every line an upstream printed, kept for whoever serves it in process (tests).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// Prints `line` and keeps it in `seen`.
pub(crate) fn say(seen: &Seen, line: String) {
    // Not `println!`: with stdout closed (piped into `head`, or a reader gone) a sample
    // upstream keeps serving instead of panicking mid-request.
    let _ = writeln!(std::io::stdout(), "{line}");
    if let Ok(mut s) = seen.lock() {
        s.push(line);
    }
}

/// Serves `app` on `--listen` (default `default`) until killed: what each binary's
/// `main` is. `banner` gets the address bound.
pub async fn run(
    name: &str,
    default: &str,
    app: axum::Router,
    banner: impl Fn(SocketAddr) -> String,
) -> ExitCode {
    let addr = match listen_addr(name, default) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", banner(listener.local_addr().unwrap_or(addr)));
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The address from `--listen ADDR` (or `--listen=ADDR`), else `default`. Anything else
/// on the command line is an error, printed with the usage.
pub fn listen_addr(name: &str, default: &str) -> Result<SocketAddr, String> {
    let usage = format!("usage: {name} [--listen IP:PORT]   (default {default})");
    let mut args = std::env::args().skip(1);
    let mut addr = default.to_owned();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => addr = args.next().ok_or_else(|| usage.clone())?,
            "-h" | "--help" => return Err(usage),
            _ => match a.strip_prefix("--listen=") {
                Some(v) => addr = v.to_owned(),
                None => return Err(format!("unknown argument `{a}`\n{usage}")),
            },
        }
    }
    addr.parse()
        .map_err(|_| format!("`{addr}` is not an IP:PORT address\n{usage}"))
}

/// Whether `v` looks like a JWT (three base64url parts, a JSON header): an access token.
fn looks_like_jwt(v: &str) -> bool {
    let t = v.strip_prefix("Bearer ").unwrap_or(v).trim();
    t.starts_with("eyJ") && t.split('.').count() == 3
}

/// Prints one received request: its line, then every header but the transport's own.
/// Flags a JWT in any header: an agent's token should never reach an upstream behind
/// Mandate's gateway. With `decided`, says so when `Mandate-Decision-Id` is missing
/// (the HTTP gateway sends it with every request it forwards; the MCP gateway sends no
/// header of its own).
pub(crate) fn print_request(
    seen: &Seen,
    who: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    decided: bool,
) {
    say(seen, format!("{who}: {method} {uri}"));
    for (k, v) in headers {
        if matches!(k.as_str(), "host" | "content-length" | "accept-encoding") {
            continue;
        }
        let v = v.to_str().unwrap_or("<not text>");
        say(seen, format!("    {k}: {v}"));
        if looks_like_jwt(v) {
            say(
                seen,
                "    ^ an access token (JWT) arrived here: nothing should send one upstream"
                    .to_owned(),
            );
        }
    }
    if decided && !headers.contains_key("mandate-decision-id") {
        say(
            seen,
            "    (no Mandate-Decision-Id: this request did not come through the gateway)"
                .to_owned(),
        );
    }
}

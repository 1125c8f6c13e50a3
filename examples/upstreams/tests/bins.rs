//! The two sample-upstream binaries, run as a new user runs them: each binds the address
//! given with `--listen`, prints a banner naming it, and answers HTTP there; a wrong
//! argument is a usage error (exit 2), never a server on a surprise port.
//!
//! Having integration tests is also what makes `cargo nextest run --workspace` build
//! `crm-api` and `mcp-tools` (cargo builds a package's binaries for its integration
//! tests only), and the README runner (`crates/mandate/tests/e2e/readme.rs`) runs the
//! README's `cargo run -p mandate-examples --bin …` lines with those built binaries.

#![expect(
    clippy::panic,
    clippy::expect_used,
    reason = "test: a failed step fails the test loudly"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A started binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `exe --listen 127.0.0.1:0` and returns it with the address its banner names.
fn start(exe: &str) -> (Running, String) {
    let mut child = Command::new(exe)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let mut stdout = BufReader::new(stdout);
    let mut banner = String::new();
    stdout.read_line(&mut banner).expect("read the banner");
    // Keep reading what it prints (each request), as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("{exe}: no http:// address in its banner {banner:?}"))
        .to_owned();
    assert!(
        !addr.ends_with(":0"),
        "{exe}: the banner names the port asked for, not the one bound: {banner:?}"
    );
    (running, addr)
}

/// One HTTP/1.1 request on a fresh connection; returns the status code and the body.
fn request(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    conn.write_all(req.as_bytes()).expect("send the request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read the answer");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn crm_api_serves_contacts_only_with_its_api_key() {
    let (_crm, addr) = start(env!("CARGO_BIN_EXE_crm-api"));
    let (status, _) = request(&addr, "GET", "/api/contacts/c42", &[], "");
    assert_eq!(status, 401, "no API key");
    let (status, _) = request(
        &addr,
        "GET",
        "/api/contacts/c42",
        &["Authorization: Bearer not-the-key"],
        "",
    );
    assert_eq!(status, 401, "a wrong API key");
    let (status, body) = request(
        &addr,
        "GET",
        "/api/contacts/c42",
        &["Authorization: Bearer demo-crm-key"],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"c42\""), "{body}");
}

#[test]
fn mcp_tools_answers_an_mcp_initialize() {
    let (_mcp, addr) = start(env!("CARGO_BIN_EXE_mcp-tools"));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bins-test","version":"0"}}}"#;
    let (status, body) = request(
        &addr,
        "POST",
        "/mcp",
        &[
            "Content-Type: application/json",
            "Accept: application/json, text/event-stream",
        ],
        init,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
}

#[test]
fn a_wrong_argument_is_a_usage_error_and_nothing_listens() {
    for exe in [
        env!("CARGO_BIN_EXE_crm-api"),
        env!("CARGO_BIN_EXE_mcp-tools"),
    ] {
        for args in [&["--port", "9"][..], &["--listen", "not-an-address"][..]] {
            let out = Command::new(exe)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
            assert_eq!(out.status.code(), Some(2), "{exe} {args:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("usage:"), "{exe} {args:?}: {stderr}");
            assert!(out.stdout.is_empty(), "{exe} {args:?} printed a banner");
        }
    }
}

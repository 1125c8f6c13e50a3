//! SIEM export (issue 23) against a real syslog receiver: Debian's `rsyslogd`, started by
//! the test on loopback ports (TCP with octet counting, UDP), writing what it receives to
//! a file the test reads; and the file sink. Every event of the node's log arrives, in
//! order, through a receiver that is down at first, and through a `kill -9` of the
//! server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, cli, data_dir};

/// An `rsyslogd -n` of the test's own, listening on 127.0.0.1 (TCP and UDP), writing
/// `<input> <pri> <hostname> <app-name> <msgid> <msg>` lines to `out`.
struct Rsyslog {
    child: Child,
    tcp: u16,
    udp: u16,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free just now (for TCP and UDP both).
pub(crate) fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` on `tcp` (and a UDP port), waiting until it accepts.
    fn start(dir: &Path, tcp: u16) -> Rsyslog {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("rsyslogd is not installed (Debian package `rsyslog`; .ci/run installs it)")
            });
        std::fs::create_dir_all(dir).unwrap();
        let udp = free_port();
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}\")\n\
                 module(load=\"imtcp\")\n\
                 module(load=\"imudp\")\n\
                 input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n\
                 input(type=\"imudp\" port=\"{udp}\" address=\"127.0.0.1\")\n\
                 template(name=\"t\" type=\"string\" \
                 string=\"%inputname% %pri% %hostname% %app-name% %msgid% %msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{o}\" template=\"t\")\n",
                d = dir.display(),
                o = out.display(),
            ),
        )
        .unwrap();
        let child = Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog {
            child,
            tcp,
            udp,
            out,
        }
    }

    /// What arrived on `input` (`imtcp`, `imudp`): each line's fields and the record.
    fn received(&self, input: &str) -> Vec<(String, Value)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (head, msg) = l.split_once(" {")?;
                let rest = head.strip_prefix(input)?.trim().to_owned();
                Some((rest, serde_json::from_str(&format!("{{{msg}")).unwrap()))
            })
            .collect()
    }
}

pub(crate) fn ids(records: &[(String, Value)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, r)| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `node:0` … `node:len-1`.
pub(crate) fn all_ids(node: &str, len: u64) -> Vec<String> {
    (0..len).map(|s| format!("{node}:{s}")).collect()
}

/// `GET /v1/export`.
pub(crate) async fn status(s: &Server, admin: &str) -> Value {
    let (st, v) = s.admin(admin, Method::GET, "/v1/export", None).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Waits until every sink has delivered the whole log, and the log stopped growing (some
/// events, such as a token's, are written just after their answer); its status then.
pub(crate) async fn caught_up(s: &Server, admin: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_len = None;
    loop {
        let v = status(s, admin).await;
        let done = v["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["lag"] == 0 && k["next"] == v["log_length"]);
        if done && last_len == Some(v["log_length"].clone()) {
            return v;
        }
        last_len = Some(v["log_length"].clone());
        assert!(Instant::now() < deadline, "export did not catch up: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Some events of several kinds: an agent, its secret, tokens.
pub(crate) async fn activity(s: &Server, admin: &str, name: &str, tokens: usize) {
    let (id, secret) = s.agent_with_secret(admin, name).await;
    for _ in 0..tokens {
        let (st, t) = s.token_basic(&id, &secret, &[]).await;
        assert_eq!(st, 200, "{t}");
    }
    let (st, _) = s.token_basic(&id, "wrong", &[]).await;
    assert_eq!(st, 401);
}

pub(crate) fn config(dir: &Path, sinks: &str) -> PathBuf {
    let p = dir.join("mandate.toml");
    std::fs::write(&p, sinks).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_over_tcp_and_udp_and_a_file_receive_every_event_in_order() {
    let (t, dir) = data_dir();
    let rs = Rsyslog::start(&t.path().join("rsyslog"), free_port());
    let file = t.path().join("audit.jsonl");
    let conf = config(
        t.path(),
        &format!(
            "[[export.sinks]]\nname = \"siem-tcp\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{}\"\n\n\
             [[export.sinks]]\nname = \"siem-udp\"\ntype = \"syslog\"\ntransport = \"udp\"\n\
             address = \"127.0.0.1:{}\"\nfacility = \"local4\"\nformat = \"ocsf\"\n\n\
             [[export.sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
            rs.tcp,
            rs.udp,
            file.display()
        ),
    );
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "exported", 5).await;
    let v = caught_up(&s, &admin).await;
    let (node, len) = (
        v["node"].as_str().unwrap().to_owned(),
        v["log_length"].as_u64().unwrap(),
    );
    assert!(len >= 5, "the activity's events: {v}");
    let want = all_ids(&node, len);

    let tcp = rs.received("imtcp");
    assert_eq!(ids(&tcp), want, "TCP: every event, in order, once");
    // The header: PRI authpriv (10) with the event's severity, the node as HOSTNAME,
    // `mandate` as APP-NAME, the kind as MSGID.
    for (head, r) in &tcp {
        let f: Vec<&str> = head.split(' ').collect();
        let pri: u32 = f[0].parse().unwrap();
        assert_eq!(pri / 8, 10, "{head}");
        let sev = if r["kind"] == "token.refused" { 4 } else { 6 };
        assert_eq!(pri % 8, sev, "{head} {r}");
        assert_eq!(
            &f[1..],
            &[node.as_str(), "mandate", r["kind"].as_str().unwrap()]
        );
    }
    // UDP, OCSF records, facility local4 (20).
    let udp = rs.received("imudp");
    let udp_ids: Vec<String> = udp
        .iter()
        .map(|(_, r)| r["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(udp_ids, want, "UDP on loopback: every event, in order");
    assert!(
        udp.iter()
            .all(|(h, _)| h.split(' ').next().unwrap().parse::<u32>().unwrap() / 8 == 20)
    );
    // The file: JSON Lines, the same events.
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(lines, want);

    // What an operator sees.
    let (code, out, err) = cli(&s.addr, &admin, &["export", "status"]);
    assert_eq!(code, 0, "{err}");
    for name in ["siem-tcp", "siem-udp", "archive"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(!out.contains("FAILING"), "{out}");
}

/// The receiver is down when the server starts: the sink says why in its status, loses
/// nothing, and delivers everything in order once rsyslogd comes up on that port.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_at_start_gets_everything_when_it_comes_up() {
    let (t, dir) = data_dir();
    let port = free_port();
    let conf = config(
        t.path(),
        &format!(
            "[[export.sinks]]\nname = \"late\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\n"
        ),
    );
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "early", 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failing = loop {
        let v = status(&s, &admin).await;
        if v["sinks"][0]["last_error"].is_string() {
            break v;
        }
        assert!(Instant::now() < deadline, "no failure shown: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sink = &failing["sinks"][0];
    assert_eq!(sink["next"], 0, "{failing}");
    assert!(sink["lag"].as_u64().unwrap() > 0);
    assert!(
        sink["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{failing}"
    );
    let (_, out, _) = cli(&s.addr, &admin, &["export", "status"]);
    assert!(out.contains("FAILING"), "{out}");
    // Decisions do not wait for it: the API answers while the sink fails.
    activity(&s, &admin, "during", 2).await;

    let rs = Rsyslog::start(&t.path().join("rsyslog"), port);
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    assert_eq!(ids(&rs.received("imtcp")), want);
    assert!(v["sinks"][0]["last_error"].is_null(), "{v}");
}

/// `kill -9` of the server in the middle of an export, then a restart: the receiver
/// dies after some events (what was in flight to it may be lost), more events come while
/// it is down (the sink failing, its lag growing), the server is killed, and both come
/// back. Every event arrives at least once, and in order: a repeat only ever re-sends a
/// stretch already sent, so the first arrival of each event is in log order.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_export_then_a_restart_loses_nothing() {
    let (t, dir) = data_dir();
    let rs_dir = t.path().join("rsyslog");
    let port = free_port();
    let rs = Rsyslog::start(&rs_dir, port);
    let conf = config(
        t.path(),
        &format!(
            "[[export.sinks]]\nname = \"siem\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\n\
             batch_max_events = 3\n"
        ),
    );
    let env = [("MANDATE_CONFIG", conf.to_str().unwrap())];
    let mut s = Server::start(&dir, &[], &env);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "before", 10).await;
    caught_up(&s, &admin).await;
    drop(rs);
    activity(&s, &admin, "while-down", 10).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = status(&s, &admin).await;
        let k = &v["sinks"][0];
        if k["lag"].as_u64().unwrap() > 0 && k["last_error"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the sink never failed: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.kill9();
    let rs = Rsyslog::start(&rs_dir, port);
    let s = Server::start(&dir, &[], &env);
    activity(&s, &admin, "after", 2).await;
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    let got = ids(&rs.received("imtcp"));
    let mut first: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for id in &got {
        if seen.insert(id.clone()) {
            first.push(id.clone());
        }
    }
    assert_eq!(
        first, want,
        "every event at least once, first arrivals in log order"
    );
    let repeats: BTreeMap<&String, usize> = got.iter().fold(BTreeMap::new(), |mut m, id| {
        *m.entry(id).or_default() += 1;
        m
    });
    eprintln!(
        "{} events, {} arrivals, {} sent more than once",
        want.len(),
        got.len(),
        repeats.values().filter(|n| **n > 1).count()
    );
}

/// A minimal HTTP/1.1 receiver on loopback: keeps each request's headers (lower-cased
/// names) and body, answers 200.
async fn http_receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let keep = std::sync::Arc::clone(&keep);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + len {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    keep.lock().unwrap().push((head, body));
                    buf.drain(..end + 4 + len);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (port, got)
}

/// An HTTP sink from the config file through the real binary: a webhook gets every
/// event as signed JSON Lines, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_sink_from_the_config_file_gets_signed_json_lines() {
    let (t, dir) = data_dir();
    let (port, got) = http_receiver().await;
    let secret = t.path().join("hook.secret");
    std::fs::write(&secret, "a-webhook-secret-of-32-characters").unwrap();
    let conf = config(
        t.path(),
        &format!(
            "[[export.sinks]]\nname = \"hook\"\ntype = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/siem\"\nsecret_file = \"{}\"\n",
            secret.display()
        ),
    );
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "hooked", 3).await;
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    let requests = got.lock().unwrap().clone();
    let mut ids = Vec::new();
    for (head, body) in &requests {
        assert!(head.starts_with("post /siem "), "{head}");
        assert!(head.contains("mandate-signature: t="), "{head}");
        for line in body.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids, want);
}

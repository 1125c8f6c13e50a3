//! Syslog over TLS (RFC 5425) against a real receiver: Debian's `rsyslogd` with its
//! `gtls` stream driver (package `rsyslog-gnutls`), started by the test on a loopback
//! port with certificates the test makes (rcgen). Every event arrives over TLS, in order;
//! a receiver Mandate must not trust (another CA, another name) gets nothing while the
//! sink shows why, and everything once the config is right; mutual TLS with rsyslog's
//! `x509/certvalid`; a CA bundle or key that does not parse stops the start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;

use crate::export::{activity, all_ids, caught_up, config, free_port, ids, status};
use crate::harness::{BIN, Server, cli, data_dir};

/// A CA the test made: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// Writes a certificate of `ca` for `names` and its key (0600) into `dir` as
/// `<stem>.pem` and `<stem>.key`.
fn leaf(ca: &Ca, names: &[&str], dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let mut p =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// An `rsyslogd -n` of the test's own, taking syslog over TLS (gtls) on 127.0.0.1,
/// writing `<pri> <hostname> <app-name> <msgid> <msg>` lines to `out`.
struct RsyslogTls {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for RsyslogTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RsyslogTls {
    /// Starts rsyslogd in `dir` with certificate `cert`/`key`, trusting `ca` for client
    /// certificates; `auth` is gtls's `StreamDriver.AuthMode` (`anon`: no client
    /// certificate asked; `x509/certvalid`: one signed by `ca` required).
    fn start(dir: &Path, ca: &Path, cert: &Path, key: &Path, auth: &str) -> RsyslogTls {
        Self::start_on(free_port(), dir, ca, cert, key, auth)
    }

    /// [`RsyslogTls::start`] on `port`.
    fn start_on(
        port: u16,
        dir: &Path,
        ca: &Path,
        cert: &Path,
        key: &Path,
        auth: &str,
    ) -> RsyslogTls {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("rsyslogd is not installed (Debian package `rsyslog`; .ci/run installs it)")
            });
        let gtls = [
            "/usr/lib/x86_64-linux-gnu/rsyslog",
            "/usr/lib/aarch64-linux-gnu/rsyslog",
        ]
        .iter()
        .any(|d| Path::new(d).join("lmnsd_gtls.so").exists());
        assert!(
            gtls,
            "rsyslog's TLS driver is not installed (Debian package `rsyslog-gnutls`; .ci/run installs it)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join("received.log");
        let conf = write(
            dir,
            "rsyslog.conf",
            &format!(
                "global(workDirectory=\"{d}\"\n\
                 \x20 DefaultNetstreamDriver=\"gtls\"\n\
                 \x20 DefaultNetstreamDriverCAFile=\"{ca}\"\n\
                 \x20 DefaultNetstreamDriverCertFile=\"{cert}\"\n\
                 \x20 DefaultNetstreamDriverKeyFile=\"{key}\")\n\
                 module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"{auth}\")\n\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
                 template(name=\"t\" type=\"string\" \
                 string=\"%pri% %hostname% %app-name% %msgid% %msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{o}\" template=\"t\")\n",
                d = dir.display(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
                o = out.display(),
            ),
        );
        let child = Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslogd.err")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start: {}",
                std::fs::read_to_string(dir.join("rsyslogd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        RsyslogTls { child, port, out }
    }

    /// What arrived: each line's header fields and its record.
    fn received(&self) -> Vec<(String, Value)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (head, msg) = l.split_once(" {")?;
                Some((
                    head.to_owned(),
                    serde_json::from_str(&format!("{{{msg}")).ok()?,
                ))
            })
            .collect()
    }
}

/// A `[[export.sinks]]` table: syslog over TLS to `port` with `extra` lines.
fn tls_sink(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[export.sinks]]\nname = \"{name}\"\ntype = \"syslog\"\ntransport = \"tls\"\n\
         address = \"127.0.0.1:{port}\"\n{extra}"
    )
}

/// Waits until the sink's status shows an error containing `want`; that status.
async fn failing_with(s: &Server, admin: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = status(s, admin).await;
        if v["sinks"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(want))
        {
            return v;
        }
        assert!(Instant::now() < deadline, "no error `{want}` shown: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (a) Every event arrives over TLS, in order, with its RFC 5424 header.
#[tokio::test(flavor = "multi_thread")]
async fn rsyslog_over_tls_receives_every_event_in_order() {
    let (t, dir) = data_dir();
    let pki = t.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = ca("test CA");
    let ca_file = write(&pki, "ca.pem", &ca.pem);
    let (cert, key) = leaf(&ca, &["siem.test", "127.0.0.1"], &pki, "rsyslog");
    let rs = RsyslogTls::start(&t.path().join("rsyslog"), &ca_file, &cert, &key, "anon");
    let conf = config(
        t.path(),
        &tls_sink(
            "siem-tls",
            rs.port,
            &format!(
                "ca_file = \"{}\"\nbatch_max_events = 7\n",
                ca_file.display()
            ),
        ),
    );
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "over-tls", 12).await;
    let v = caught_up(&s, &admin).await;
    let (node, len) = (
        v["node"].as_str().unwrap().to_owned(),
        v["log_length"].as_u64().unwrap(),
    );
    assert!(len >= 12, "{v}");
    let got = rs.received();
    assert_eq!(
        ids(&got),
        all_ids(&node, len),
        "every event, in order, once"
    );
    for (head, r) in &got {
        let f: Vec<&str> = head.split(' ').collect();
        assert_eq!(f[0].parse::<u32>().unwrap() / 8, 10, "authpriv: {head}");
        assert_eq!(
            &f[1..],
            &[node.as_str(), "mandate", r["kind"].as_str().unwrap()]
        );
    }
    assert!(v["sinks"][0]["last_error"].is_null(), "{v}");
    assert_eq!(v["sinks"][0]["type"], "syslog");
}

/// A TLS receiver that dies mid-stream and comes back on its port: the sink notices the
/// broken TLS connection (closed, or a write that fails), says so, and sends again from
/// the batch before; every event arrives at least once, first arrivals in log order.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_receiver_restarted_mid_stream_gets_every_event() {
    let (t, dir) = data_dir();
    let pki = t.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = ca("test CA");
    let ca_file = write(&pki, "ca.pem", &ca.pem);
    let (cert, key) = leaf(&ca, &["127.0.0.1"], &pki, "rsyslog");
    let rs_dir = t.path().join("rsyslog");
    let rs = RsyslogTls::start(&rs_dir, &ca_file, &cert, &key, "anon");
    let port = rs.port;
    let conf = config(
        t.path(),
        &tls_sink(
            "siem",
            port,
            &format!(
                "ca_file = \"{}\"\nbatch_max_events = 3\n",
                ca_file.display()
            ),
        ),
    );
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "before", 5).await;
    caught_up(&s, &admin).await;
    drop(rs);
    activity(&s, &admin, "while-down", 5).await;
    failing_with(&s, &admin, "127.0.0.1").await;
    let rs = RsyslogTls::start_on(port, &rs_dir, &ca_file, &cert, &key, "anon");
    activity(&s, &admin, "after", 2).await;
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    let mut first = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for id in ids(&rs.received()) {
        if seen.insert(id.clone()) {
            first.push(id);
        }
    }
    assert_eq!(
        first, want,
        "every event at least once, first arrivals in order"
    );
}

/// (b) A receiver Mandate must not trust gets nothing: its certificate is signed by
/// another CA (unknown issuer), then — with that CA trusted — it is for another name
/// than the address's. The sink shows why and keeps every event; restarted with the
/// right `ca_file` and `server_name`, it delivers them all, in order.
#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_receiver_gets_nothing_until_the_config_is_fixed() {
    let (t, dir) = data_dir();
    let pki = t.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ours = ca("our CA");
    let theirs = ca("their CA");
    let our_ca = write(&pki, "ours.pem", &ours.pem);
    let their_ca = write(&pki, "theirs.pem", &theirs.pem);
    // rsyslog's certificate: their CA's, for `siem.test` only (not 127.0.0.1).
    let (cert, key) = leaf(&theirs, &["siem.test"], &pki, "rsyslog");
    let rs = RsyslogTls::start(&t.path().join("rsyslog"), &their_ca, &cert, &key, "anon");
    let start = |extra: String| {
        let conf = config(t.path(), &tls_sink("siem", rs.port, &extra));
        Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())])
    };

    // Another CA.
    let mut s = start(format!("ca_file = \"{}\"\n", our_ca.display()));
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "refused", 3).await;
    let v = failing_with(&s, &admin, "TLS handshake with 127.0.0.1").await;
    let sink = &v["sinks"][0];
    let e = sink["last_error"].as_str().unwrap();
    assert!(e.contains("UnknownIssuer"), "{v}");
    assert_eq!(
        (sink["next"].as_u64(), sink["delivered"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(sink["lag"].as_u64().unwrap() > 0, "{v}");
    let (_, out, _) = cli(&s.addr, &admin, &["export", "status"]);
    assert!(
        out.contains("FAILING") && out.contains("UnknownIssuer"),
        "{out}"
    );
    assert!(s.stop().success());

    // Their CA, but the address's name (127.0.0.1) is not the certificate's.
    let mut s = start(format!("ca_file = \"{}\"\n", their_ca.display()));
    activity(&s, &admin, "misnamed", 2).await;
    let v = failing_with(&s, &admin, "not valid for name").await;
    assert_eq!(v["sinks"][0]["next"], 0, "{v}");
    assert!(s.stop().success());
    assert!(rs.received().is_empty(), "nothing reached the receiver");

    // Fixed: their CA and the certificate's name.
    let s = start(format!(
        "ca_file = \"{}\"\nserver_name = \"siem.test\"\n",
        their_ca.display()
    ));
    activity(&s, &admin, "fixed", 2).await;
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    assert_eq!(ids(&rs.received()), want, "everything, in order, once");
    assert!(v["sinks"][0]["last_error"].is_null(), "{v}");
}

/// (c) Mutual TLS: rsyslog requires a client certificate signed by its CA
/// (`StreamDriver.AuthMode="x509/certvalid"`). Without one, Mandate's handshake ends
/// but rsyslog closes the connection: the sink shows it and delivers nothing; with its
/// client certificate, rsyslog accepts it and gets everything.
#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_rsyslog_accepts_mandates_client_certificate() {
    let (t, dir) = data_dir();
    let pki = t.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = ca("test CA");
    let ca_file = write(&pki, "ca.pem", &ca.pem);
    let (cert, key) = leaf(&ca, &["127.0.0.1"], &pki, "rsyslog");
    let (client_cert, client_key) = leaf(&ca, &["mandate-node"], &pki, "mandate");
    let rs = RsyslogTls::start(
        &t.path().join("rsyslog"),
        &ca_file,
        &cert,
        &key,
        "x509/certvalid",
    );
    let start = |extra: String| {
        let conf = config(t.path(), &tls_sink("siem-mtls", rs.port, &extra));
        Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())])
    };
    // No client certificate: refused after the handshake, nothing counts as delivered.
    let mut s = start(format!("ca_file = \"{}\"\n", ca_file.display()));
    let admin = s.token.clone().unwrap();
    activity(&s, &admin, "anonymous", 2).await;
    let v = failing_with(&s, &admin, "after the handshake").await;
    assert_eq!(v["sinks"][0]["next"], 0, "{v}");
    assert!(s.stop().success());
    assert!(rs.received().is_empty());

    let s = start(format!(
        "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        ca_file.display(),
        client_cert.display(),
        client_key.display()
    ));
    activity(&s, &admin, "mutual", 4).await;
    let v = caught_up(&s, &admin).await;
    let want = all_ids(
        v["node"].as_str().unwrap(),
        v["log_length"].as_u64().unwrap(),
    );
    assert_eq!(ids(&rs.received()), want);
}

/// A TLS sink whose files are wrong stops the start, naming the sink and the file: a CA
/// bundle that is not PEM, a key that is not the certificate's, a key others can read.
#[test]
fn bad_tls_files_stop_the_start_with_a_clear_error() {
    let (t, dir) = data_dir();
    let pki = t.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = ca("test CA");
    let ca_file = write(&pki, "ca.pem", &ca.pem);
    let junk = write(&pki, "junk.pem", "this is not PEM\n");
    let (cert, _) = leaf(&ca, &["mandate-node"], &pki, "mine");
    let (_, other_key) = leaf(&ca, &["someone-else"], &pki, "other");
    let (_, loose_key) = leaf(&ca, &["mandate-node"], &pki, "loose");
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cases = [
        (format!("ca_file = \"{}\"\n", junk.display()), "`ca_file`"),
        (
            format!("ca_file = \"{}\"\n", pki.join("missing.pem").display()),
            "reading `ca_file`",
        ),
        (
            format!(
                "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                ca_file.display(),
                cert.display(),
                other_key.display()
            ),
            "not the key of `client_cert_file`",
        ),
        (
            format!(
                "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                ca_file.display(),
                cert.display(),
                loose_key.display()
            ),
            "chmod 600",
        ),
    ];
    for (extra, want) in cases {
        let conf = config(t.path(), &tls_sink("siem", 6514, &extra));
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("MANDATE_CONFIG", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra}: {err}");
        assert!(err.contains("export sink `siem`: "), "{extra}: {err}");
        assert!(err.contains(want), "{extra}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}

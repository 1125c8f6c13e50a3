//! The export transports that need no HTTP: a JSON Lines file rotated by size, and
//! RFC 5424 syslog over TCP (octet counting, RFC 6587), TLS (octet counting, RFC 5425;
//! the client is `mandate_tls`'s) or UDP (RFC 5426). The HTTP sinks (webhook, Splunk
//! HEC, Elasticsearch) are the HTTP edge's.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mandate_export::syslog::{Facility, message, octet_counted};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

use crate::export::{Item, SendError, Sending, SinkConfig, SinkKind, SyslogTransport, Transport};

/// The rotation size of a file sink unless configured: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// How many rotated files a file sink keeps unless configured.
pub const DEFAULT_KEEP: u32 = 5;

/// The port of syslog over TLS when the address names none (RFC 5425 §4.1).
pub const TLS_PORT: u16 = 6514;

/// The longest a TLS connection may take to connect and shake hands: a receiver that
/// accepts and then says nothing fails the batch instead of holding the sink.
pub const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// How long the receiver has to refuse a new TLS connection (its client certificate)
/// before the first batch on it counts as sent.
pub const TLS_SETTLE: Duration = Duration::from_millis(250);

/// The transport of a `file` or `syslog` sink; `None` for the HTTP kinds. Reads a TLS
/// sink's CA bundle, certificate and key now: an error names the sink and the file.
pub fn transport(cfg: &SinkConfig) -> Result<Option<Box<dyn Transport>>, String> {
    Ok(match cfg.kind {
        SinkKind::File => Some(Box::new(FileSink {
            path: cfg.path.clone().unwrap_or_default(),
            max_bytes: cfg.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            keep: cfg.keep.unwrap_or(DEFAULT_KEEP),
        })),
        SinkKind::Syslog => {
            let address = cfg.address.clone().unwrap_or_default();
            let facility = cfg.facility.unwrap_or_default();
            Some(match cfg.transport.unwrap_or_default() {
                SyslogTransport::Tcp => Box::new(SyslogTcp {
                    address,
                    facility,
                    tls: None,
                    stream: None,
                }),
                SyslogTransport::Tls => {
                    let name = &cfg.name;
                    let (host, port) =
                        mandate_tls::host_port(&address, TLS_PORT).ok_or_else(|| {
                            format!("export sink `{name}`: `address` `{address}` is not host:port")
                        })?;
                    let client = mandate_tls::Client::new(&cfg.tls())
                        .map_err(|e| format!("export sink `{name}`: {e}"))?;
                    Box::new(SyslogTcp {
                        address: format!("{host}:{port}"),
                        facility,
                        tls: Some(Arc::new(Tls { client, host, port })),
                        stream: None,
                    })
                }
                SyslogTransport::Udp => Box::new(SyslogUdp {
                    address,
                    facility,
                    socket: None,
                }),
            })
        }
        SinkKind::Webhook | SinkKind::Splunk | SinkKind::Elasticsearch | SinkKind::Ssf => None,
    })
}

/// JSON Lines, one record per line (ASCII JSON), appended to `path` and flushed to disk
/// (`fsync`) before a batch counts as delivered. Before a batch would take the file past
/// `max_bytes`, the file is rotated: `path.{keep-1}` → `path.{keep}` (the oldest
/// dropped), …, `path` → `path.1`. A batch larger than `max_bytes` by itself goes into
/// a fresh file whole (a record is never split).
struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

impl Transport for FileSink {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        let mut text = String::new();
        for item in batch {
            text.push_str(&item.json);
            text.push('\n');
        }
        let (path, max_bytes, keep) = (self.path.clone(), self.max_bytes, self.keep);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || append(&path, max_bytes, keep, text.as_bytes()))
                .await
                .map_err(|e| SendError::new(format!("writing the file: {e}")))?
                .map_err(|e| SendError::new(format!("writing the file: {e}")))
        })
    }
}

fn append(path: &Path, max_bytes: u64, keep: u32, bytes: &[u8]) -> std::io::Result<()> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if len > 0 && len.saturating_add(bytes.len() as u64) > max_bytes {
        rotate(path, keep)?;
    }
    // A file it creates is the owner's alone (0600): audit records name agents, people
    // and what they did. An existing file keeps the mode its operator gave it.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// Syslog over TCP or TLS, octet-counted. Syslog has no acknowledgement (RFC 6587,
/// RFC 5425), so:
/// - before each batch, the connection is checked for the receiver's close (a FIN or
///   reset already arrived: a read that ends or fails at once); a closed connection
///   means the previous batch may not have been read, and it is sent again with this
///   one on a new connection (`SendError::resend_previous`); so does a failed write;
/// - the transport does not confirm (`confirms() == false`): the sink's stored cursor
///   stays at the start of the last batch, so a restart sends that batch again.
///
/// Duplicates (same event id) rather than gaps. What is left: over a real network, a
/// receiver that dies after reading nothing of two or more batches that all went out
/// before its close came back loses them; a receiver that must lose nothing takes a
/// file or HTTP sink.
///
/// Over TLS a handshake failure (an unknown issuer, another name, an expired
/// certificate) is a failed batch like a refused connection: shown in the sink's status,
/// tried again after the back-off, nothing skipped.
struct SyslogTcp {
    address: String,
    facility: Facility,
    /// `Some` over TLS.
    tls: Option<Arc<Tls>>,
    stream: Option<Stream>,
}

/// The TLS client of a syslog sink and where it connects.
struct Tls {
    client: mandate_tls::Client,
    host: String,
    port: u16,
}

/// A syslog connection.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<mandate_tls::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the receiver has closed or reset the connection: a syslog receiver never
    /// sends data, so a read that ends (EOF, or TLS `close_notify`) or fails now, without
    /// waiting, means the connection is gone.
    fn closed(&mut self) -> bool {
        match self {
            Self::Tcp(s) => {
                let mut byte = [0u8; 1];
                match s.try_read(&mut byte) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                }
            }
            // One poll of a read: TLS records the receiver sent (a TLS 1.3 session
            // ticket) are taken by rustls; no application data means `Pending`.
            Self::Tls(s) => {
                let mut buf = [0u8; 64];
                let mut read = ReadBuf::new(&mut buf);
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(s.as_mut()).poll_read(&mut cx, &mut read) {
                    Poll::Ready(Ok(())) => read.filled().is_empty(),
                    Poll::Ready(Err(_)) => true,
                    Poll::Pending => false,
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Self::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

impl SyslogTcp {
    /// A new connection to the receiver, TLS's handshake done.
    async fn connect(&self) -> Result<Stream, SendError> {
        let Some(tls) = &self.tls else {
            let s = TcpStream::connect(&self.address)
                .await
                .map_err(|e| SendError::new(format!("connecting to {}: {e}", self.address)))?;
            let _ = s.set_nodelay(true);
            return Ok(Stream::Tcp(s));
        };
        let handshake = async {
            let s = TcpStream::connect((tls.host.as_str(), tls.port))
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.address))?;
            let _ = s.set_nodelay(true);
            tls.client
                .connect(&tls.host, s)
                .await
                .map_err(|e| format!("TLS handshake with {}: {e}", self.address))
        };
        match tokio::time::timeout(TLS_HANDSHAKE, handshake).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(SendError::new(e)),
            Err(_) => Err(SendError::new(format!(
                "TLS handshake with {}: no answer in {} s",
                self.address,
                TLS_HANDSHAKE.as_secs()
            ))),
        }
    }
}

impl Transport for SyslogTcp {
    fn confirms(&self) -> bool {
        false
    }

    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let mut bytes = Vec::new();
            for item in batch {
                let m = message(&item.event, self.facility, &item.json);
                bytes.extend_from_slice(octet_counted(&m).as_bytes());
            }
            let had = self.stream.is_some();
            if let Some(s) = &mut self.stream
                && s.closed()
            {
                self.stream = None;
                return Err(SendError {
                    message: format!("{} closed the connection", self.address),
                    resend_previous: true,
                });
            }
            let fresh = self.stream.is_none();
            let stream = match self.stream.take() {
                Some(s) => self.stream.insert(s),
                None => {
                    let s = self.connect().await?;
                    self.stream.insert(s)
                }
            };
            let wrote = stream.write(&bytes).await;
            if let Err(e) = wrote {
                self.stream = None;
                return Err(SendError {
                    message: format!("writing to {}: {e}", self.address),
                    resend_previous: had,
                });
            }
            // INVARIANT (nothing skipped): in TLS 1.3 the client's handshake ends before
            // the receiver has checked the client's certificate; one that refuses it (or
            // wants one) closes the connection just after. The first batch on a new TLS
            // connection counts as sent only once the receiver kept the connection open
            // for `TLS_SETTLE`, so a refusal fails that batch rather than passing it.
            if fresh && let Some(Stream::Tls(s)) = &mut self.stream {
                let mut buf = [0u8; 64];
                let closed = match tokio::time::timeout(TLS_SETTLE, s.read(&mut buf)).await {
                    Err(_) => None,
                    Ok(Ok(0)) => Some("closed the connection".to_owned()),
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                };
                if let Some(why) = closed {
                    self.stream = None;
                    return Err(SendError::new(format!(
                        "{} ended the TLS connection after the handshake ({why}): does it \
                         refuse the client certificate, or want one?",
                        self.address
                    )));
                }
            }
            Ok(())
        })
    }
}

/// Syslog over UDP: one message per datagram, best effort (RFC 5426): the network may
/// drop a datagram and nothing tells. A message too large for a datagram fails the
/// batch (and so stalls the sink, saying why) rather than being cut.
struct SyslogUdp {
    address: String,
    facility: Facility,
    socket: Option<UdpSocket>,
}

impl Transport for SyslogUdp {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let socket = match &mut self.socket {
                Some(s) => s,
                None => {
                    let target = tokio::net::lookup_host(&self.address)
                        .await
                        .map_err(|e| SendError::new(format!("resolving {}: {e}", self.address)))?
                        .next()
                        .ok_or_else(|| {
                            SendError::new(format!("{} resolves to nothing", self.address))
                        })?;
                    let local = if target.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let s = UdpSocket::bind(local)
                        .await
                        .map_err(|e| SendError::new(format!("binding a UDP socket: {e}")))?;
                    s.connect(target)
                        .await
                        .map_err(|e| SendError::new(format!("connecting to {target}: {e}")))?;
                    self.socket.insert(s)
                }
            };
            for item in batch {
                let m = message(&item.event, self.facility, &item.json);
                if let Err(e) = socket.send(m.as_bytes()).await {
                    self.socket = None;
                    return Err(SendError::new(format!(
                        "sending to {}: {e} (a message of {} bytes)",
                        self.address,
                        m.len()
                    )));
                }
            }
            Ok(())
        })
    }
}

//! An incremental Server-Sent Events reader (WHATWG event-stream rules: `\r\n`, `\n` or
//! `\r` line ends, `data:` lines joined by `\n`, comments ignored), for reading an
//! upstream MCP server's SSE responses as the bytes arrive.

/// One message as an SSE event (`event: message`, no id: streams through the gateway
/// are not resumable).
pub fn event(msg: &serde_json::Value) -> Vec<u8> {
    format!("event: message\ndata: {msg}\n\n").into_bytes()
}

/// The JSON-RPC messages in one event's data: one message, or the members of a batch
/// (which the 2025-03-26 transport allowed); nothing if it is not JSON.
pub fn messages(data: &[u8]) -> Vec<serde_json::Value> {
    match serde_json::from_slice(data) {
        Ok(serde_json::Value::Array(batch)) => batch,
        Ok(msg) => vec![msg],
        Err(_) => Vec::new(),
    }
}

/// Feeds on byte chunks; yields the `data` of each complete event.
#[derive(Debug)]
pub struct Reader {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` starting this one belongs to it.
    skip_lf: bool,
    /// The current event grew past `max`: it is dropped when it ends.
    oversized: bool,
    max: usize,
    dropped: usize,
}

impl Reader {
    /// A reader that drops (and counts) events larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skip_lf: false,
            oversized: false,
            max,
            dropped: 0,
        }
    }

    /// How many events were dropped for their size.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Reads `chunk`; returns the data of the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.skip_lf = true;
                    self.end_line(&mut out);
                }
                b'\n' => self.end_line(&mut out),
                _ => {
                    if self.line.len() + self.data.len() < self.max {
                        self.line.push(b);
                    } else {
                        self.oversized = true;
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<Vec<u8>>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            // A blank line ends the event.
            let data = std::mem::take(&mut self.data);
            let had = std::mem::replace(&mut self.has_data, false);
            if std::mem::replace(&mut self.oversized, false) {
                self.dropped += 1;
            } else if had {
                out.push(data);
            }
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(0) => return, // a comment
            Some(i) => {
                let (f, rest) = line.split_at(i);
                let rest = rest.get(1..).unwrap_or_default();
                (f, rest.strip_prefix(b" ").unwrap_or(rest))
            }
            None => (line.as_slice(), &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event`, `id` and `retry` do not matter to the gateway: it passes the stream
        // through as it is and only reads the messages.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut Reader, chunks: &[&[u8]]) -> Vec<String> {
        chunks
            .iter()
            .flat_map(|c| r.push(c))
            .map(|d| String::from_utf8(d).unwrap())
            .collect()
    }

    #[test]
    fn events_across_chunks_and_line_ends() {
        let mut r = Reader::new(1 << 20);
        let got = all(
            &mut r,
            &[
                b"event: message\r",
                b"\ndata: {\"a\":",
                b"1}\r\n\r\n: a comment\n\nid: 7\ndata:x\ndata: y\n\n",
                b"data: z\r\rdata",
                b"\n\n",
            ],
        );
        assert_eq!(got, vec!["{\"a\":1}", "x\ny", "z", ""]);
    }

    #[test]
    fn an_event_with_no_data_is_not_dispatched_and_big_ones_are_dropped() {
        let mut r = Reader::new(8);
        let got = all(
            &mut r,
            &[b"id: 1\n\n", b"data: 0123456789\n\n", b"data: ok\n\n"],
        );
        assert_eq!(got, vec!["ok"]);
        assert_eq!(r.dropped(), 1);
    }
}

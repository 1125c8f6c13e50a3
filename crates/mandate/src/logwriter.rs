//! The server's log sink: `tracing` events are formatted on the thread that emits them
//! and handed to one writer thread, which writes them to stderr in batches. A request
//! thread never waits on stderr (a pipe or a terminal that may be slow), only on a short
//! copy into a shared buffer.
//!
//! **A full queue blocks the emitter; no line is ever dropped.** The access log and the
//! warnings are part of a security product's record, so losing lines under load (and
//! counting them) is worse than slowing the requests that produce them: when the writer
//! falls [`QUEUE_BYTES`] behind, emitting threads wait for it, exactly as they waited
//! on stderr itself before this module. After [`LogWriter::finish`] (or once the writer
//! thread has gone), lines are written straight to the sink on the emitting thread.
//!
//! Shutdown: [`LogWriter::finish`] (also run on drop) writes every queued line, flushes
//! the sink and joins the writer thread; `main` calls it before it prints its own error
//! line or returns, so the log is complete and in order when the process exits.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How many bytes of formatted lines may wait for the writer before emitters block.
pub const QUEUE_BYTES: usize = 1 << 20;

/// After writing a batch, the writer lets lines gather this long before the next one,
/// so a busy server makes about a hundred `write` calls (and thread wake-ups) a second
/// rather than one a line. A line reaches stderr at most this much later.
const LINGER: Duration = Duration::from_millis(10);

struct Queue {
    /// Formatted lines not yet written.
    buf: Vec<u8>,
    /// The writer is parked until an emitter wakes it (set by the writer, cleared by the
    /// emitter that wakes it). While it is clear the writer looks at `buf` again
    /// within [`LINGER`] by itself, so emitters skip the wake-up syscall.
    idle: bool,
    /// [`LogWriter::finish`] was called: the writer drains `buf` and stops.
    closed: bool,
    /// The writer thread is gone: emitters write to the sink themselves.
    direct: bool,
}

struct Shared<W> {
    queue: Mutex<Queue>,
    /// Signalled to wake an idle writer, and at close.
    data: Condvar,
    /// Signalled when the writer takes a batch, for emitters waiting for room.
    room: Condvar,
    /// Where lines go; locked by the writer for each batch and by emitters only in
    /// direct mode.
    sink: Mutex<W>,
}

impl<W> Shared<W> {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The non-blocking sink (see the module docs): `tracing_subscriber` gets the
/// [`LogMaker`]; `main` keeps this to finish it.
pub struct LogWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

/// The `MakeWriter` handed to `tracing_subscriber`.
pub struct LogMaker<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> LogWriter<W> {
    /// Starts the writer thread over `sink`. If the thread cannot be started, lines are
    /// written to `sink` directly, as a plain synchronous writer would.
    pub fn start(sink: W) -> (Self, LogMaker<W>) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                buf: Vec::with_capacity(64 * 1024),
                idle: false,
                closed: false,
                direct: false,
            }),
            data: Condvar::new(),
            room: Condvar::new(),
            sink: Mutex::new(sink),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mandate-log".to_owned())
            .spawn(move || run(&s))
            .ok();
        if thread.is_none() {
            shared.queue().direct = true;
        }
        let maker = LogMaker {
            shared: Arc::clone(&shared),
        };
        (Self { shared, thread }, maker)
    }

    /// Writes every queued line, flushes the sink and stops the writer thread. Lines
    /// emitted afterwards are written directly. Idempotent.
    pub fn finish(&mut self) {
        self.shared.queue().closed = true;
        self.shared.data.notify_all();
        if let Some(t) = self.thread.take() {
            // INVARIANT (log drained): the writer returns only once `closed` is set and
            // `buf` is empty, and its `OnExit` writes anything queued since and sets
            // `direct` under the queue lock, so no line is left behind after the join.
            let _ = t.join();
        }
        // Without a thread (it could not start) this is what it would have done.
        go_direct(&self.shared);
    }
}

impl<W: Write + Send + 'static> Drop for LogWriter<W> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Switches to direct writes: whatever is still queued is written now, and emitters
/// waiting for room are released to write for themselves.
fn go_direct<W: Write>(s: &Shared<W>) {
    let mut q = s.queue();
    q.direct = true;
    let rest = std::mem::take(&mut q.buf);
    let mut sink = s.sink.lock().unwrap_or_else(PoisonError::into_inner);
    // The queue lock is held until `rest` is written, so no direct write overtakes it.
    let _ = sink.write_all(&rest);
    let _ = sink.flush();
    drop(sink);
    drop(q);
    s.room.notify_all();
}

/// Runs [`go_direct`] when the writer thread ends, also by a panic (a sink that
/// panicked), so emitters never wait for a writer that is gone.
struct OnExit<'a, W: Write>(&'a Shared<W>);

impl<W: Write> Drop for OnExit<'_, W> {
    fn drop(&mut self) {
        go_direct(self.0);
    }
}

/// The writer thread: takes the whole queue at once, writes it, lingers, repeats.
fn run<W: Write>(s: &Shared<W>) {
    let _exit = OnExit(s);
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut q = s.queue();
        while q.buf.is_empty() && !q.closed {
            q.idle = true;
            q = s.data.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.idle = false;
        if q.buf.is_empty() {
            // Closed and drained: from now on emitters write themselves (`OnExit`).
            return;
        }
        std::mem::swap(&mut q.buf, &mut batch);
        let closing = q.closed;
        drop(q);
        s.room.notify_all();
        {
            let mut sink = s.sink.lock().unwrap_or_else(PoisonError::into_inner);
            // A failed write (stderr closed) loses the batch, as a direct write would
            // have lost the line; there is nowhere else to report it.
            let _ = sink.write_all(&batch);
            let _ = sink.flush();
        }
        batch.clear();
        if batch.capacity() > 4 * QUEUE_BYTES {
            batch.shrink_to(64 * 1024);
        }
        // Linger only while the queue is far from full: emitters waiting for room are
        // never kept waiting for the timer.
        if !closing && s.queue().buf.len() < QUEUE_BYTES / 2 {
            std::thread::sleep(LINGER);
        }
    }
}

/// One event's writer: `tracing_subscriber` formats the whole line first and hands it
/// over in one `write_all`, which lands here as one `write`.
pub struct LineWriter<'a, W: Write + Send + 'static> {
    shared: &'a Shared<W>,
}

impl<W: Write + Send + 'static> Write for LineWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let s = self.shared;
        let mut q = s.queue();
        // Backpressure: wait for room rather than drop the line (module docs).
        while !q.direct && !q.buf.is_empty() && q.buf.len() + line.len() > QUEUE_BYTES {
            if q.idle {
                q.idle = false;
                s.data.notify_one();
            }
            q = s.room.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        if q.direct {
            drop(q);
            let mut sink = s.sink.lock().unwrap_or_else(PoisonError::into_inner);
            sink.write_all(line)?;
            return Ok(line.len());
        }
        q.buf.extend_from_slice(line);
        if q.idle {
            q.idle = false;
            drop(q);
            s.data.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogMaker<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::{LogWriter, QUEUE_BYTES};
    use tracing_subscriber::fmt::MakeWriter;

    /// A sink tests can read, optionally slow.
    #[derive(Clone, Default)]
    struct Sink {
        out: Arc<Mutex<Vec<u8>>>,
        slow: bool,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.slow {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.out.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(sink: &Sink) -> Vec<String> {
        String::from_utf8(sink.out.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Everything emitted before `finish` is written, in order, by the time it returns.
    #[test]
    fn finish_writes_every_queued_line_in_order() {
        let sink = Sink::default();
        let (mut log, maker) = LogWriter::start(sink.clone());
        for i in 0..10_000 {
            writeln!(maker.make_writer(), "line {i}").unwrap();
        }
        log.finish();
        let got = lines(&sink);
        assert_eq!(got.len(), 10_000);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i}"))
        );
    }

    /// A sink slower than the emitters fills the queue: emitters wait (backpressure),
    /// and no line from any thread is lost.
    #[test]
    fn a_full_queue_blocks_emitters_and_loses_nothing() {
        let sink = Sink {
            slow: true,
            ..Sink::default()
        };
        let (log, maker) = LogWriter::start(sink.clone());
        let maker = Arc::new(maker);
        let pad = "x".repeat(990);
        let per_thread = 2 * QUEUE_BYTES / 1000;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (maker, pad) = (Arc::clone(&maker), pad.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let l = format!("{t} {i:06} {pad}\n");
                        assert_eq!(l.len(), 1000);
                        maker.make_writer().write_all(l.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        let got = lines(&sink);
        assert_eq!(got.len(), 4 * per_thread);
        for t in 0..4 {
            let mine: Vec<_> = got
                .iter()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .collect();
            assert_eq!(mine.len(), per_thread);
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "each thread's lines in order"
            );
        }
    }

    /// After `finish`, lines still arrive (written directly), not dropped.
    #[test]
    fn lines_after_finish_are_written_directly() {
        let sink = Sink::default();
        let (mut log, maker) = LogWriter::start(sink.clone());
        writeln!(maker.make_writer(), "before").unwrap();
        log.finish();
        writeln!(maker.make_writer(), "after").unwrap();
        assert_eq!(lines(&sink), ["before", "after"]);
    }
}

//! Files made of every shard's torrents (the state file, the scrape
//! export), written without a lock on the hot path: the thread that owns a
//! shard (a request worker, or the socket worker in inline mode) writes its
//! own part when asked, between two batches of requests, and the asking
//! thread writes the parts to the file one shard after another.
//!
//! ```text
//!   main / exporter thread            shard owner (request loop)
//!   ShardControl::collect ---ShardCommand(kind, chunk channel)--> serve_commands
//!        <------------- chunks of <= 256 KiB, then Done -------- Housekeeping::write_*
//! ```
//!
//! A part travels in chunks over a bounded channel, so neither side holds
//! more than a few chunks of it. Either side gives up on the other after
//! `timeout` without progress: a stuck worker can delay a shutdown, never
//! stop it, and a stuck writer never stops a shard from serving.

use std::io::{self, Write};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};

use crate::SecondsSinceStart;
use crate::request_loop::Housekeeping;

/// Bytes a shard owner gathers before handing a chunk over.
const CHUNK_LEN: usize = 256 * 1024;
/// Chunks waiting for the writer, per part.
const CHUNKS_IN_FLIGHT: usize = 4;
/// How long either side waits for the other to make progress.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which file a part is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// [`crate::state`]: peers and download counts, for the next start.
    State,
    /// [`crate::scrape_export`]: one line per torrent.
    ScrapeExport,
}

impl PartKind {
    fn name(self) -> &'static str {
        match self {
            PartKind::State => "state file",
            PartKind::ScrapeExport => "scrape export",
        }
    }
}

enum PartMessage {
    Data(Vec<u8>),
    Done,
}

/// A request to a shard's owner to write its part of a file.
pub struct ShardCommand {
    kind: PartKind,
    chunks: Sender<PartMessage>,
    timeout: Duration,
}

/// The channel a shard owner takes commands on.
pub fn command_channel() -> (Sender<ShardCommand>, Receiver<ShardCommand>) {
    bounded(16)
}

/// Answer every command waiting on `commands`, without waiting for more.
/// Called by a shard's owner between batches; a part that cannot be handed
/// over is logged and abandoned.
pub fn serve_commands<S: Housekeeping>(
    commands: &Receiver<ShardCommand>,
    shard: &S,
    now: SecondsSinceStart,
) {
    while let Ok(command) = commands.try_recv() {
        let mut writer = PartWriter {
            buf: Vec::new(),
            chunks: &command.chunks,
            timeout: command.timeout,
        };
        let written = match command.kind {
            PartKind::State => shard.write_state(now, &mut writer),
            PartKind::ScrapeExport => shard.write_scrape_export(&mut writer),
        };
        if let Err(err) = written.and_then(|()| writer.finish()) {
            log::warn!(
                "this shard's part of the {} was not handed over: {err}",
                command.kind.name()
            );
        }
    }
}

/// What `Housekeeping::write_*` writes to: fills chunks and hands them over.
struct PartWriter<'a> {
    buf: Vec<u8>,
    chunks: &'a Sender<PartMessage>,
    timeout: Duration,
}

impl PartWriter<'_> {
    fn send(&self, message: PartMessage) -> io::Result<()> {
        self.chunks
            .send_timeout(message, self.timeout)
            .map_err(|err| match err {
                SendTimeoutError::Timeout(_) => {
                    io::Error::new(io::ErrorKind::TimedOut, "the writer stopped taking chunks")
                }
                SendTimeoutError::Disconnected(_) => {
                    io::Error::new(io::ErrorKind::BrokenPipe, "the writer gave up")
                }
            })
    }

    fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.send(PartMessage::Data(chunk))?;
        }
        self.send(PartMessage::Done)
    }
}

impl Write for PartWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK_LEN);
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_LEN {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_LEN));
            self.send(PartMessage::Data(chunk))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The line to every shard's owner, in shard order: asks them for their
/// parts. Cloned into each thread that writes such a file.
#[derive(Clone)]
pub struct ShardControl {
    owners: Vec<Sender<ShardCommand>>,
    timeout: Duration,
}

impl ShardControl {
    /// `owners[i]` takes the commands for shard `i`.
    pub fn new(owners: Vec<Sender<ShardCommand>>) -> Self {
        Self {
            owners,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn num_shards(&self) -> usize {
        self.owners.len()
    }

    /// Ask each shard's owner in turn for its part and write the chunks to
    /// `out`. Fails when an owner makes no progress for the timeout, or
    /// stops before the end of its part.
    pub fn collect(&self, kind: PartKind, out: &mut dyn Write) -> anyhow::Result<()> {
        let secs = self.timeout.as_secs_f64();
        for (index, owner) in self.owners.iter().enumerate() {
            let (chunks, received) = bounded(CHUNKS_IN_FLIGHT);
            let command = ShardCommand {
                kind,
                chunks,
                timeout: self.timeout,
            };
            owner
                .send_timeout(command, self.timeout)
                .map_err(|_| anyhow::anyhow!("shard {index} takes no commands"))?;
            loop {
                match received.recv_timeout(self.timeout) {
                    Ok(PartMessage::Data(chunk)) => out.write_all(&chunk)?,
                    Ok(PartMessage::Done) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        anyhow::bail!("shard {index} sent nothing for {secs} s")
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        anyhow::bail!("shard {index} stopped before the end of its part")
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard whose parts are `len` bytes of `byte`.
    struct Bytes {
        byte: u8,
        len: usize,
    }

    impl Housekeeping for Bytes {
        fn clean(&mut self, _: SecondsSinceStart) {}
        fn publish(&self) {}
        fn write_state(&self, _: SecondsSinceStart, out: &mut dyn Write) -> io::Result<()> {
            for _ in 0..self.len {
                out.write_all(&[self.byte])?;
            }
            Ok(())
        }
    }

    fn owner(shard: Bytes) -> Sender<ShardCommand> {
        let (sender, commands) = command_channel();
        // Polls like a request loop between batches, for a few seconds.
        std::thread::spawn(move || {
            for _ in 0..1000 {
                serve_commands(&commands, &shard, SecondsSinceStart(0));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        sender
    }

    #[test]
    fn parts_arrive_in_shard_order_and_whole() {
        let control = ShardControl::new(vec![
            owner(Bytes {
                byte: b'a',
                len: CHUNK_LEN * 3 + 7,
            }),
            owner(Bytes { byte: b'b', len: 0 }),
            owner(Bytes { byte: b'c', len: 5 }),
        ]);
        let mut out = Vec::new();
        control.collect(PartKind::State, &mut out).unwrap();
        assert_eq!(out.len(), CHUNK_LEN * 3 + 12);
        assert!(out[..CHUNK_LEN * 3 + 7].iter().all(|&b| b == b'a'));
        assert_eq!(&out[CHUNK_LEN * 3 + 7..], b"ccccc");
        // The default scrape export part is empty.
        let mut out = Vec::new();
        control.collect(PartKind::ScrapeExport, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn silent_owner_is_given_up_on() {
        let (sender, _commands) = command_channel();
        let control = ShardControl::new(vec![sender]).with_timeout(Duration::from_millis(100));
        let err = control
            .collect(PartKind::State, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("shard 0 sent nothing"), "{err}");
    }
}

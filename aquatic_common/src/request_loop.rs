//! The loop every request worker runs: receive batches of requests for its
//! shard, answer them, send the answers back in one batch per socket worker
//! and wake that worker, and clean the shard every interval.
//!
//! Answers go back with a blocking send: socket workers never block on a
//! request worker (they drop on a full channel), so this cannot deadlock,
//! and a slow socket worker slows its request workers instead of letting
//! answers pile up without bound.
//!
//! Between batches it also answers the main thread's requests for this
//! shard's part of the state file or scrape export
//! ([`crate::shard_parts`]): the shard's owner writes it, so no lock is
//! ever taken on the torrents.
//!
//! Also the wiring a daemon starts its request workers with: [`channels`],
//! [`polls_and_wakers`] and [`spawn_request_workers`].

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use mio::{Poll, Token, Waker};

use crate::health::{Heartbeat, Heartbeats};
use crate::shard_parts::{ShardCommand, ShardControl, command_channel, serve_commands};
use crate::supervision::Supervisor;
use crate::{InfoHash, SecondsSinceStart, ServerStartInstant};

/// Interrupts a socket worker's poll (a `mio::Waker`'s `wake`).
pub type WakeFn = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

pub struct RequestLoop<Req, Resp> {
    pub clock: ServerStartInstant,
    pub receiver: Receiver<Vec<Req>>,
    /// One channel and one wake function per socket worker.
    pub response_senders: Vec<Sender<Vec<Resp>>>,
    pub wakers: Vec<WakeFn>,
    pub cleaning_interval_secs: u32,
    /// Requests for this shard's part of a file ([`crate::shard_parts`]).
    pub commands: Receiver<ShardCommand>,
    /// Beaten once per turn of the loop ([`crate::health`]).
    pub heartbeat: Arc<Heartbeat>,
}

/// Longest wait for a batch: bounds how late cleaning and commands run on
/// an idle worker.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// What a request worker does with its shard: answer requests, and
/// [`Housekeeping`].
pub trait Shard<Req, Resp>: Housekeeping {
    /// Answer one request: push each message to send with the index of
    /// the socket worker it goes to (none, one, or several: a WebSocket
    /// announce also relays offers to other peers' connections).
    fn handle(&mut self, now: SecondsSinceStart, request: Req, out: &mut Vec<(usize, Resp)>);
}

/// What a shard's owner does with it besides answering requests.
pub trait Housekeeping {
    fn clean(&mut self, now: SecondsSinceStart);
    /// Publish gauges (torrents, peers) after a batch or a cleaning.
    fn publish(&self);
    /// Write this shard's part of the state file (`crate::state`): its
    /// peers still valid at `now`, and download counts. The default keeps
    /// nothing across a restart (WebSocket peers are bound to their
    /// connections, which a restart closes).
    fn write_state(&self, now: SecondsSinceStart, out: &mut dyn Write) -> io::Result<()> {
        let _ = (now, out);
        Ok(())
    }
    /// Write this shard's lines of the scrape export
    /// (`crate::scrape_export`). The default writes none.
    fn write_scrape_export(&self, out: &mut dyn Write) -> io::Result<()> {
        let _ = out;
        Ok(())
    }
}

impl<Req, Resp> RequestLoop<Req, Resp> {
    pub fn run<S: Shard<Req, Resp>>(self, shard: &mut S) -> anyhow::Result<()> {
        let mut outgoing: Vec<Vec<Resp>> = (0..self.response_senders.len())
            .map(|_| Vec::new())
            .collect();
        let mut answers = Vec::new();
        // A shard loaded from the state file is not empty at start.
        shard.publish();
        let mut next_cleaning = self
            .clock
            .seconds_elapsed()
            .add_secs(self.cleaning_interval_secs);
        loop {
            let now = self.clock.seconds_elapsed();
            self.heartbeat.beat(now);
            match self.receiver.recv_timeout(IDLE_WAKE) {
                Ok(batch) => {
                    for request in batch {
                        shard.handle(now, request, &mut answers);
                        for (worker, response) in answers.drain(..) {
                            if let Some(out) = outgoing.get_mut(worker) {
                                out.push(response);
                            }
                        }
                    }
                    self.flush(&mut outgoing)?;
                    shard.publish();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => anyhow::bail!("request channel closed"),
            }
            if now >= next_cleaning {
                shard.clean(now);
                crate::allocator::return_freed_memory();
                shard.publish();
                next_cleaning = now.add_secs(self.cleaning_interval_secs);
            }
            serve_commands(&self.commands, shard, now);
        }
    }

    fn flush(&self, outgoing: &mut [Vec<Resp>]) -> anyhow::Result<()> {
        for (i, out) in outgoing.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let batch = std::mem::take(out);
            if let (Some(sender), Some(wake)) = (self.response_senders.get(i), self.wakers.get(i)) {
                sender
                    .send(batch)
                    .map_err(|_| anyhow::anyhow!("response channel {i} closed"))?;
                wake()?;
            }
        }
        Ok(())
    }
}

/// With `request_workers = 0`: the one shard, owned by the one socket
/// worker, which answers its requests itself and does what a request
/// worker's loop does besides: cleaning when due, publishing gauges, and
/// serving the main thread's requests for the shard's parts of files.
pub struct InlineShard<S, Req, Resp> {
    shard: S,
    commands: Receiver<ShardCommand>,
    cleaning_interval_secs: u32,
    next_cleaning: SecondsSinceStart,
    /// Reused for each request's answers.
    answers: Vec<(usize, Resp)>,
    _requests: std::marker::PhantomData<fn(Req)>,
}

impl<S: Shard<Req, Resp>, Req, Resp> InlineShard<S, Req, Resp> {
    pub fn new(
        shard: S,
        commands: Receiver<ShardCommand>,
        now: SecondsSinceStart,
        cleaning_interval_secs: u32,
    ) -> Self {
        // A shard loaded from the state file is not empty at start.
        shard.publish();
        Self {
            shard,
            commands,
            cleaning_interval_secs,
            next_cleaning: now.add_secs(cleaning_interval_secs),
            answers: Vec::new(),
            _requests: std::marker::PhantomData,
        }
    }

    /// Answer a batch of requests, handing every answer to `respond`.
    pub fn handle(
        &mut self,
        now: SecondsSinceStart,
        batch: Vec<Req>,
        mut respond: impl FnMut(Resp),
    ) {
        for request in batch {
            self.shard.handle(now, request, &mut self.answers);
            for (_, response) in self.answers.drain(..) {
                respond(response);
            }
        }
    }

    /// Answer the requests a socket worker has batched for the one shard
    /// (`request_workers = 0`): take the batch `queue` names, answer it
    /// with `respond`, and go round while answers let the worker queue
    /// more (pipelined requests behind an answered one); then publish the
    /// shard's gauges. `worker` is passed to both, so that they may borrow
    /// it mutably in turn.
    pub fn drain<W>(
        &mut self,
        worker: &mut W,
        now: SecondsSinceStart,
        queue: impl Fn(&mut W) -> Option<&mut Vec<Req>>,
        respond: impl Fn(&mut W, Resp),
    ) {
        while let Some(batch) = queue(worker).map(std::mem::take) {
            if batch.is_empty() {
                break;
            }
            self.handle(now, batch, |response| respond(worker, response));
        }
        self.publish();
    }

    /// After a round of batches: the gauges.
    pub fn publish(&self) {
        self.shard.publish();
    }

    /// Once per event-loop round: clean when due, serve commands.
    pub fn housekeep(&mut self, now: SecondsSinceStart) {
        if now >= self.next_cleaning {
            self.shard.clean(now);
            crate::allocator::return_freed_memory();
            self.shard.publish();
            self.next_cleaning = now.add_secs(self.cleaning_interval_secs);
        }
        serve_commands(&self.commands, &self.shard, now);
    }
}

/// Which request worker owns an info hash: its first four bytes, modulo
/// the number of request workers (the one shard when there are none).
pub fn shard_of(info_hash: &InfoHash, request_workers: usize) -> usize {
    let [a, b, c, d, ..] = info_hash.0;
    (u32::from_le_bytes([a, b, c, d]) as usize) % request_workers.max(1)
}

/// `count` bounded channels of `capacity` batches each: the senders and
/// the receivers.
pub fn channels<T>(count: usize, capacity: usize) -> (Vec<Sender<T>>, Vec<Receiver<T>>) {
    (0..count).map(|_| bounded(capacity)).unzip()
}

/// One poll instance per socket worker, and the wake function of a waker
/// registered with each under `token`.
pub fn polls_and_wakers(count: usize, token: Token) -> anyhow::Result<(Vec<Poll>, Vec<WakeFn>)> {
    let mut polls = Vec::with_capacity(count);
    let mut wakers: Vec<WakeFn> = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = Poll::new().context("cannot create poll instance")?;
        let waker = Waker::new(poll.registry(), token)?;
        wakers.push(Arc::new(move || waker.wake()));
        polls.push(poll);
    }
    Ok((polls, wakers))
}

/// Start one request worker (thread `request-INDEX`) per receiver, each
/// running a [`RequestLoop`] over its own shard (the receivers and shards
/// are paired in order; there is one shard per receiver); the control that
/// asks them for their parts of the state file and scrape export.
pub fn spawn_request_workers<Req, Resp, S>(
    supervisor: &Supervisor,
    heartbeats: &Heartbeats,
    receivers: Vec<Receiver<Vec<Req>>>,
    response_senders: &[Sender<Vec<Resp>>],
    wakers: &[WakeFn],
    cleaning_interval_secs: u32,
    shards: Vec<S>,
) -> anyhow::Result<ShardControl>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    S: Shard<Req, Resp> + Send + 'static,
{
    anyhow::ensure!(
        shards.len() == receivers.len(),
        "{} shards for {} request workers",
        shards.len(),
        receivers.len()
    );
    let mut owners = Vec::with_capacity(receivers.len());
    for (index, (receiver, mut shard)) in receivers.into_iter().zip(shards).enumerate() {
        let (owner, commands) = command_channel();
        owners.push(owner);
        let request_loop = RequestLoop {
            clock: heartbeats.clock(),
            receiver,
            response_senders: response_senders.to_vec(),
            wakers: wakers.to_vec(),
            cleaning_interval_secs,
            commands,
            heartbeat: heartbeats.register(format!("request-{index}")),
        };
        supervisor.spawn(format!("request-{index}"), move || {
            request_loop.run(&mut shard)
        })?;
    }
    Ok(ShardControl::new(owners))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_range() {
        for n in 1..8 {
            for b in 0..=255u8 {
                assert!(shard_of(&InfoHash([b; 20]), n) < n);
            }
        }
        assert_eq!(shard_of(&InfoHash([3; 20]), 0), 0);
    }
}

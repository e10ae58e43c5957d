//! The loop every request worker runs: receive batches of requests for its
//! shard, answer them, send the answers back in one batch per socket worker
//! and wake that worker, and clean the shard every interval.
//!
//! Answers go back with a blocking send: socket workers never block on a
//! request worker (they drop on a full channel), so this cannot deadlock,
//! and a slow socket worker slows its request workers instead of letting
//! answers pile up without bound.
//!
//! Also the wiring a daemon starts its request workers with: [`channels`],
//! [`polls_and_wakers`] and [`spawn_request_workers`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use mio::{Poll, Token, Waker};

use crate::supervision::Supervisor;
use crate::{SecondsSinceStart, ServerStartInstant};

/// Interrupts a socket worker's poll (a `mio::Waker`'s `wake`).
pub type WakeFn = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

pub struct RequestLoop<Req, Resp> {
    pub clock: ServerStartInstant,
    pub receiver: Receiver<Vec<Req>>,
    /// One channel and one wake function per socket worker.
    pub response_senders: Vec<Sender<Vec<Resp>>>,
    pub wakers: Vec<WakeFn>,
    pub cleaning_interval_secs: u32,
}

/// What a request worker does with its shard.
pub trait Shard<Req, Resp> {
    /// Answer one request: push each message to send with the index of
    /// the socket worker it goes to (none, one, or several: a WebSocket
    /// announce also relays offers to other peers' connections).
    fn handle(&mut self, now: SecondsSinceStart, request: Req, out: &mut Vec<(usize, Resp)>);
    fn clean(&mut self, now: SecondsSinceStart);
    /// Publish gauges (torrents, peers) after a batch or a cleaning.
    fn publish(&self);
}

impl<Req, Resp> RequestLoop<Req, Resp> {
    pub fn run<S: Shard<Req, Resp>>(self, shard: &mut S) -> anyhow::Result<()> {
        let mut outgoing: Vec<Vec<Resp>> = (0..self.response_senders.len())
            .map(|_| Vec::new())
            .collect();
        let mut answers = Vec::new();
        let mut next_cleaning = self
            .clock
            .seconds_elapsed()
            .add_secs(self.cleaning_interval_secs);
        loop {
            let now = self.clock.seconds_elapsed();
            match self.receiver.recv_timeout(Duration::from_millis(500)) {
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
                shard.publish();
                next_cleaning = now.add_secs(self.cleaning_interval_secs);
            }
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
/// running a [`RequestLoop`] over its own shard `new_shard(INDEX)`.
pub fn spawn_request_workers<Req, Resp, S>(
    supervisor: &Supervisor,
    clock: ServerStartInstant,
    receivers: Vec<Receiver<Vec<Req>>>,
    response_senders: &[Sender<Vec<Resp>>],
    wakers: &[WakeFn],
    cleaning_interval_secs: u32,
    mut new_shard: impl FnMut(usize) -> S,
) -> anyhow::Result<()>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    S: Shard<Req, Resp> + Send + 'static,
{
    for (index, receiver) in receivers.into_iter().enumerate() {
        let request_loop = RequestLoop {
            clock,
            receiver,
            response_senders: response_senders.to_vec(),
            wakers: wakers.to_vec(),
            cleaning_interval_secs,
        };
        let mut shard = new_shard(index);
        supervisor.spawn(format!("request-{index}"), move || {
            request_loop.run(&mut shard)
        })?;
    }
    Ok(())
}

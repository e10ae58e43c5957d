//! The traffic with the request workers: batches of requests out (or to
//! the inline shard), failures when a worker's queue is full, and what
//! comes back, routed to the connection if it is still the same one.

use aquatic_ws_protocol::{Action, OutMessage, ScrapeResponse};
use crossbeam_channel::TrySendError;

use super::messages::error_message;
use super::{MAX_RETRIED_CLOSES, Outcome, SocketWorker};
use crate::common::{
    DropReason, FAILURE_OVERLOADED, RequestMessage, ResponseMessage, SwarmRequest, SwarmResponse,
    add,
};

impl SocketWorker {
    pub(super) fn flush_batches(&mut self) {
        if let Some(mut inline) = self.inline.take() {
            // request_workers = 0: this thread owns the only shard.
            let now = self.now;
            inline.drain(self, now, |w| w.batches.first_mut(), Self::handle_response);
            self.inline = Some(inline);
            return;
        }
        for shard in 0..self.batches.len() {
            let mut batch = self
                .retried_closes
                .get_mut(shard)
                .map(std::mem::take)
                .unwrap_or_default();
            if let Some(new) = self.batches.get_mut(shard) {
                batch.append(new);
            }
            if batch.is_empty() {
                continue;
            }
            let Some(sender) = self.request_senders.get(shard) else {
                continue;
            };
            if let Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) =
                sender.try_send(batch)
            {
                self.refuse(shard, batch);
            }
        }
    }

    /// A request worker's queue is full: answer the waiting clients with a
    /// failure reason, keep close notices for the next round.
    fn refuse(&mut self, shard: usize, batch: Vec<RequestMessage>) {
        for message in batch {
            let key = message.from.token as usize;
            let current = self
                .connections
                .get(key)
                .is_some_and(|c| c.generation == message.from.generation);
            match message.request {
                SwarmRequest::ConnectionClosed { .. } => match self.retried_closes.get_mut(shard) {
                    Some(kept) if kept.len() < MAX_RETRIED_CLOSES => kept.push(message),
                    _ => self.stats.count_drop(DropReason::Overloaded, 1),
                },
                SwarmRequest::Answer(_) => self.stats.count_drop(DropReason::Overloaded, 1),
                SwarmRequest::Announce(request) if current => {
                    let failure = error_message(
                        FAILURE_OVERLOADED,
                        Some(Action::Announce),
                        Some(request.info_hash),
                    );
                    if let Outcome::Close(reason) = self.send(key, &failure) {
                        self.close(key, reason);
                    }
                }
                SwarmRequest::Scrape { scrape_id, .. } if current => {
                    // One failure per scrape, not per part.
                    let was_pending = self
                        .connections
                        .get_mut(key)
                        .is_some_and(|c| c.session.forget_scrape(scrape_id));
                    if was_pending {
                        let failure = error_message(FAILURE_OVERLOADED, Some(Action::Scrape), None);
                        if let Outcome::Close(reason) = self.send(key, &failure) {
                            self.close(key, reason);
                        }
                    }
                }
                SwarmRequest::Announce(_) | SwarmRequest::Scrape { .. } => {}
            }
        }
    }

    pub(super) fn handle_responses(&mut self) {
        while let Ok(batch) = self.response_receiver.try_recv() {
            for message in batch {
                self.handle_response(message);
            }
        }
    }

    fn handle_response(&mut self, message: ResponseMessage) {
        let key = message.to.token as usize;
        let Some(connection) = self
            .connections
            .get_mut(key)
            .filter(|c| c.generation == message.to.generation)
        else {
            // The connection closed (or its slot was reused) meanwhile.
            self.stats.count_drop(DropReason::ConnectionGone, 1);
            return;
        };
        let outcome = match message.response {
            SwarmResponse::Message(out) => self.send(key, &out),
            SwarmResponse::ScrapePart { scrape_id, files } => {
                let Some(files) = connection.session.add_scrape_part(scrape_id, files) else {
                    return;
                };
                add(&self.stats.responses_scrape, 1);
                self.send(key, &OutMessage::ScrapeResponse(ScrapeResponse { files }))
            }
        };
        if let Outcome::Close(reason) = outcome {
            self.close(key, reason);
        }
    }
}

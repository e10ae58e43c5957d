//! A request worker's shard for aquatic_ws: the swarms and pending offers
//! of [`crate::swarm::WsShard`], driven by the shared loop
//! (`aquatic_common::request_loop`): announces (with their offers),
//! answers, scrape parts and closed connections in, replies and relayed
//! messages out.

use std::io::{self, Write};
use std::sync::atomic::Ordering;

use aquatic_common::SecondsSinceStart;
use aquatic_common::request_loop::{Housekeeping, Shard};

use crate::common::{RequestMessage, ResponseMessage, SwarmRequest, SwarmResponse};
use crate::swarm::WsShard;

impl Shard<RequestMessage, ResponseMessage> for WsShard {
    fn handle(
        &mut self,
        now: SecondsSinceStart,
        message: RequestMessage,
        out: &mut Vec<(usize, ResponseMessage)>,
    ) {
        let from = message.from;
        match message.request {
            SwarmRequest::Announce(request) => {
                self.announce(now, from, message.ip_version, message.source, request, out)
            }
            SwarmRequest::Answer(request) => self.answer(now, from, request, out),
            SwarmRequest::Scrape {
                scrape_id,
                info_hashes,
            } => {
                let files = info_hashes
                    .into_iter()
                    .map(|hash| (hash, self.scrape(message.ip_version, &hash)))
                    .collect();
                out.push((
                    from.socket_worker as usize,
                    ResponseMessage {
                        to: from,
                        response: SwarmResponse::ScrapePart { scrape_id, files },
                    },
                ));
            }
            SwarmRequest::ConnectionClosed { peers } => {
                let source = message.source;
                let map = self.map(message.ip_version);
                for (info_hash, peer_id) in peers {
                    map.remove_peer_if(&info_hash, &(source, peer_id), |data| data.extra == from);
                }
                // Its offers can no longer be answered to it: their room
                // is its source's again at once.
                self.pending.remove_connection(&from);
            }
        }
    }
}

impl Housekeeping for WsShard {
    fn clean(&mut self, now: SecondsSinceStart) {
        self.maps.clean(now);
        self.pending.clean(now);
    }

    fn write_scrape_export(&self, out: &mut dyn Write) -> io::Result<()> {
        self.maps.write_scrape_export(out)
    }

    fn publish(&self) {
        self.maps.publish(&self.gauges);
        self.stats
            .pending_offers
            .store(self.pending.len(), Ordering::Relaxed);
    }
}

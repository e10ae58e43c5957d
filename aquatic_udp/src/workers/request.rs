//! A request worker: owns one shard of the torrents (both address families)
//! outright, so the hot path takes no lock. The loop itself (batches,
//! routing, cleaning) is `aquatic_common::request_loop`.

use std::net::IpAddr;

use aquatic_common::SecondsSinceStart;
use aquatic_common::clients::ClientKey;
use aquatic_common::family_maps::MapsShard;
use aquatic_common::request_loop::Shard;

use crate::common::{RequestMessage, ResponseMessage, SwarmRequest, SwarmResponse};
use crate::swarm::{self, SwarmConfig};

/// A request worker's shard: both address families' torrents.
pub type UdpShard = MapsShard<SwarmConfig, ClientKey>;

impl Shard<RequestMessage, ResponseMessage> for UdpShard {
    fn handle(
        &mut self,
        now: SecondsSinceStart,
        message: RequestMessage,
        out: &mut Vec<(usize, ResponseMessage)>,
    ) {
        let maps = &mut self.maps;
        let response = match message.request {
            SwarmRequest::Announce(query) => match message.src.ip() {
                IpAddr::V4(ip) => SwarmResponse::AnnounceIpv4(swarm::announce(
                    &mut maps.ipv4,
                    &mut self.rng,
                    &self.config,
                    now,
                    &query,
                    ip,
                )),
                IpAddr::V6(ip) => SwarmResponse::AnnounceIpv6(swarm::announce(
                    &mut maps.ipv6,
                    &mut self.rng,
                    &self.config,
                    now,
                    &query,
                    ip,
                )),
            },
            SwarmRequest::Scrape(part) => {
                let is_v4 = message.src.ip().is_ipv4();
                let stats = part
                    .info_hashes
                    .iter()
                    .map(|(i, hash)| {
                        let s = if is_v4 {
                            swarm::scrape(&maps.ipv4, hash)
                        } else {
                            swarm::scrape(&maps.ipv6, hash)
                        };
                        (*i, s)
                    })
                    .collect();
                SwarmResponse::Scrape {
                    pending_id: part.pending_id,
                    stats,
                }
            }
        };
        out.push((
            message.socket_worker,
            ResponseMessage {
                response,
                dst: message.src,
                local: message.local,
            },
        ));
    }
}

//! A request worker's shard: announces and scrape parts for its info
//! hashes. The loop is `aquatic_common::request_loop`.

use aquatic_common::PeerId;
use aquatic_common::SecondsSinceStart;
use aquatic_common::family_maps::MapsShard;
use aquatic_common::request_loop::Shard;
use aquatic_http_protocol::PeerFormat;

use crate::common::{RequestMessage, ResponseMessage, SwarmRequest, SwarmResponse};
use crate::swarm::{self, SwarmConfig};

/// A request worker's shard: both address families' torrents.
pub type HttpShard = MapsShard<SwarmConfig, PeerId>;

impl Shard<RequestMessage, ResponseMessage> for HttpShard {
    fn handle(
        &mut self,
        now: SecondsSinceStart,
        message: RequestMessage,
        out: &mut Vec<(usize, ResponseMessage)>,
    ) {
        let ip = message.meta.peer_ip;
        let response = match message.request {
            SwarmRequest::Announce(request) => {
                let format = if request.compact {
                    PeerFormat::Compact
                } else {
                    PeerFormat::Dictionary {
                        include_peer_id: !request.no_peer_id,
                    }
                };
                let (maps, rng) = (&mut self.maps, &mut self.rng);
                let response = swarm::announce(maps, rng, &self.config, now, &request, ip);
                SwarmResponse::Announce(response, format)
            }
            SwarmRequest::Scrape(info_hashes) => SwarmResponse::Scrape(
                info_hashes
                    .into_iter()
                    .map(|hash| (hash, swarm::scrape(&self.maps, &hash, ip)))
                    .collect(),
            ),
        };
        out.push((
            message.meta.socket_worker,
            ResponseMessage {
                response,
                meta: message.meta,
            },
        ));
    }
}

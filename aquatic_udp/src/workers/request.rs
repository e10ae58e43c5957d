//! A request worker: owns one shard of the torrents (both address families)
//! outright, so the hot path takes no lock. It answers announces and scrape
//! parts in batches and sweeps stale peers every `cleaning.interval`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::ServerStartInstant;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mio::Waker;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{RequestMessage, ResponseMessage, SwarmGauges, SwarmRequest, SwarmResponse};
use crate::config::Config;
use crate::swarm::{SwarmConfig, TorrentMaps};

pub struct RequestWorker {
    pub config: Arc<Config>,
    pub clock: ServerStartInstant,
    pub receiver: Receiver<Vec<RequestMessage>>,
    pub response_senders: Vec<Sender<Vec<ResponseMessage>>>,
    pub wakers: Vec<Arc<Waker>>,
    pub gauges: Arc<SwarmGauges>,
}

impl RequestWorker {
    pub fn run(self) -> anyhow::Result<()> {
        let swarm_config = SwarmConfig {
            max_response_peers: self.config.protocol.max_response_peers,
            peer_announce_interval: self.config.protocol.peer_announce_interval,
            max_peer_age: self.config.cleaning.max_peer_age,
        };
        let mut maps = TorrentMaps::default();
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut outgoing: Vec<Vec<ResponseMessage>> = (0..self.response_senders.len())
            .map(|_| Vec::new())
            .collect();
        let cleaning_interval = u32::try_from(self.config.cleaning.interval).unwrap_or(u32::MAX);
        let mut next_cleaning = self.clock.seconds_elapsed().add_secs(cleaning_interval);

        loop {
            let now = self.clock.seconds_elapsed();
            match self.receiver.recv_timeout(Duration::from_millis(500)) {
                Ok(batch) => {
                    for message in batch {
                        let response = match message.request {
                            SwarmRequest::Announce(query) => match message.src.ip() {
                                IpAddr::V4(ip) => SwarmResponse::AnnounceIpv4(maps.ipv4.announce(
                                    &mut rng,
                                    &swarm_config,
                                    now,
                                    &query,
                                    ip,
                                )),
                                IpAddr::V6(ip) => SwarmResponse::AnnounceIpv6(maps.ipv6.announce(
                                    &mut rng,
                                    &swarm_config,
                                    now,
                                    &query,
                                    ip,
                                )),
                            },
                            SwarmRequest::Scrape(part) => {
                                let stats = part
                                    .info_hashes
                                    .iter()
                                    .map(|(i, hash)| {
                                        let s = match message.src.ip() {
                                            IpAddr::V4(_) => maps.ipv4.scrape(hash),
                                            IpAddr::V6(_) => maps.ipv6.scrape(hash),
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
                        if let Some(out) = outgoing.get_mut(message.socket_worker) {
                            out.push(ResponseMessage {
                                response,
                                dst: message.src,
                            });
                        }
                    }
                    self.flush(&mut outgoing)?;
                    self.publish(&maps);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("request channel closed");
                }
            }
            if now >= next_cleaning {
                maps.clean(now);
                self.publish(&maps);
                next_cleaning = now.add_secs(cleaning_interval);
            }
        }
    }

    fn flush(&self, outgoing: &mut [Vec<ResponseMessage>]) -> anyhow::Result<()> {
        for (i, out) in outgoing.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let batch = std::mem::take(out);
            if let (Some(sender), Some(waker)) = (self.response_senders.get(i), self.wakers.get(i))
            {
                sender
                    .send(batch)
                    .map_err(|_| anyhow::anyhow!("response channel {i} closed"))?;
                waker.wake()?;
            }
        }
        Ok(())
    }

    fn publish(&self, maps: &TorrentMaps) {
        let [v4, v6] = &self.gauges.by_ip_version;
        v4.set(
            maps.ipv4.num_torrents(),
            maps.ipv4.num_seeders(),
            maps.ipv4.num_leechers(),
        );
        v6.set(
            maps.ipv6.num_torrents(),
            maps.ipv6.num_seeders(),
            maps.ipv6.num_leechers(),
        );
    }
}

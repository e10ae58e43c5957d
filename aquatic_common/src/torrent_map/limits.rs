//! A torrent map's memory ceilings, each source's share of them, and why
//! a peer was not stored.

use crate::peer_store::{IndexBy, SwarmFull};
use crate::source::SourcePrefixes;

/// Memory ceilings, and each source's share of them. A peer that does not
/// fit is not stored, but its announce is still answered (with the peers
/// that are); a flood of new torrents or peers then costs bounded memory,
/// and a flood from one source leaves room for everyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_peers_per_torrent: usize,
    /// Peers over all torrents of this map.
    pub max_peers: usize,
    /// Most of `max_peers` one source may hold.
    pub max_peers_per_source: usize,
    /// Most of one torrent's peers one source may be; `usize::MAX`: no
    /// such budget (swarm indexes then hash whole keys).
    pub max_peers_per_torrent_per_source: usize,
    /// How addresses group into sources.
    pub prefixes: SourcePrefixes,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        max_peers_per_torrent: usize::MAX,
        max_peers: usize::MAX,
        max_peers_per_source: usize::MAX,
        max_peers_per_torrent_per_source: usize::MAX,
        prefixes: SourcePrefixes { ipv4: 32, ipv6: 64 },
    };

    /// A shard's limits from its ceilings and the `[source_budgets]`
    /// section: each source's shares scale with the ceilings.
    pub fn with_shares(
        max_peers_per_torrent: usize,
        max_peers: usize,
        budgets: &crate::source::SourceBudgetConfig,
    ) -> Limits {
        Limits {
            max_peers_per_torrent,
            max_peers,
            max_peers_per_source: budgets.share_of(max_peers),
            max_peers_per_torrent_per_source: budgets.peers_per_torrent(max_peers_per_torrent),
            prefixes: budgets.prefixes(),
        }
    }

    /// What the swarms' indexes hash.
    pub fn index_by(&self) -> IndexBy {
        if self.max_peers_per_torrent_per_source == usize::MAX {
            IndexBy::Key
        } else {
            IndexBy::Source(self.prefixes)
        }
    }
}

/// Why a peer was not stored: the `reason` label of the daemons'
/// `peers_not_stored_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The map holds `max_peers`.
    TrackerFull,
    /// The torrent holds `max_peers_per_torrent`.
    TorrentFull,
    /// The source holds `max_peers_per_source` in this map.
    SourceShare,
    /// The source holds `max_peers_per_torrent_per_source` in the torrent.
    SourceTorrentShare,
}

impl Refusal {
    /// Every reason, in discriminant order.
    pub const ALL: [Refusal; 4] = [
        Refusal::TrackerFull,
        Refusal::TorrentFull,
        Refusal::SourceShare,
        Refusal::SourceTorrentShare,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::TrackerFull => "tracker_full",
            Refusal::TorrentFull => "torrent_full",
            Refusal::SourceShare => "source_share",
            Refusal::SourceTorrentShare => "source_torrent_share",
        }
    }
}

impl From<SwarmFull> for Refusal {
    fn from(_: SwarmFull) -> Self {
        Refusal::TorrentFull
    }
}

/// Peers not stored, by [`Refusal`] (indexed by discriminant).
pub type RefusalCounts = [u64; Refusal::ALL.len()];

pub(super) fn count_refusal(counts: &mut RefusalCounts, refusal: Refusal) {
    if let Some(count) = counts.get_mut(refusal as usize) {
        *count += 1;
    }
}

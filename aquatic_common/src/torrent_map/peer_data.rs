//! What a torrent map stores for a peer besides its key: its expiry and
//! whether its download was counted, in 16 bits.

use crate::{SecondsSinceStart, ValidUntil};

/// Bit of [`PeerData`]'s stamp that says the peer's download was counted.
const DOWNLOAD_COUNTED: u16 = 1 << 15;
/// The rest of the stamp: the peer's expiry, in ticks of this many seconds,
/// modulo 2^15.
pub const TICK_SECS: u32 = 4;
const TICK_MASK: u16 = DOWNLOAD_COUNTED - 1;
/// A peer may be valid for at most half the stamp's range (2^14 ticks,
/// 18 hours): further ahead, and it would read as expired. Daemons refuse
/// a longer `max_peer_age`.
pub const MAX_PEER_LIFETIME_SECS: u32 = (1 << 14) * TICK_SECS - TICK_SECS;

fn tick(secs: SecondsSinceStart) -> u16 {
    ((secs.0 / TICK_SECS) & u32::from(TICK_MASK)) as u16
}

/// What is stored for a peer besides its key: when it expires and whether
/// its completed download was counted, both in 16 bits (so a UDP peer is 8
/// bytes), and `extra`.
///
/// The expiry is a tick (4 s) modulo 2^15, compared with the present one
/// modulo 2^15: it holds for peers up to 18 hours ahead, and an expired
/// peer reads as expired for 18 hours, far longer than any cleaning
/// interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerData<V> {
    stamp: u16,
    pub extra: V,
}

impl<V> PeerData<V> {
    /// Valid until `valid_until`, and on to the end of its 4-second tick
    /// (at most 18 hours ahead of the present).
    pub fn new(valid_until: ValidUntil, extra: V) -> Self {
        Self {
            stamp: tick(valid_until.secs()),
            extra,
        }
    }

    /// Ticks from `now` to the expiry (modulo 2^15): below 2^14 while
    /// valid.
    fn ticks_left(&self, now: SecondsSinceStart) -> u16 {
        (self.stamp & TICK_MASK).wrapping_sub(tick(now)) & TICK_MASK
    }

    pub fn is_valid_at(&self, now: SecondsSinceStart) -> bool {
        self.ticks_left(now) < 1 << 14
    }

    /// Seconds it stays valid after `now` (0 once expired), to a tick.
    pub fn secs_left(&self, now: SecondsSinceStart) -> u32 {
        if self.is_valid_at(now) {
            u32::from(self.ticks_left(now)) * TICK_SECS
        } else {
            0
        }
    }

    /// This peer's `completed` was counted in its torrent's downloads.
    pub fn download_counted(&self) -> bool {
        self.stamp & DOWNLOAD_COUNTED != 0
    }

    pub fn with_download_counted(mut self, counted: bool) -> Self {
        if counted {
            self.stamp |= DOWNLOAD_COUNTED;
        } else {
            self.stamp &= !DOWNLOAD_COUNTED;
        }
        self
    }
}

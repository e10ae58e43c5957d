//! Choosing the peers sent back in an announce response.
//!
//! Works on slices, so any swarm storage that keeps leechers and seeders in
//! contiguous runs (see [`crate::peer_store`]) can use it. A random window
//! is read, wrapping around; the announcer is never returned. A seeder is
//! only sent leechers; a leecher gets seeders and leechers in proportion.

use rand::Rng;

/// A choice of peers in progress: the random source, which entries to
/// skip (the announcer), and where chosen entries go, as what.
pub struct Choice<'a, R, X, O, F> {
    pub rng: &'a mut R,
    pub is_excluded: X,
    pub out: &'a mut Vec<O>,
    pub f: F,
}

impl<R: Rng, X, O, F> Choice<'_, R, X, O, F> {
    /// Append up to `max` entries of `slice`, starting at a random index
    /// and wrapping around, skipping excluded entries.
    pub fn extend_with_random<T>(&mut self, slice: &[T], max: usize)
    where
        X: FnMut(&T) -> bool,
        F: FnMut(&T) -> O,
    {
        let len = slice.len();
        if max == 0 || len == 0 {
            return;
        }
        let start = if len <= max {
            0
        } else {
            self.rng.random_range(0..len)
        };
        // `start < len`, so the split always succeeds.
        let (head, tail) = slice.split_at_checked(start).unwrap_or((&[], slice));
        let mut taken = 0;
        for item in tail.iter().chain(head) {
            if taken == max {
                break;
            }
            if !(self.is_excluded)(item) {
                self.out.push((self.f)(item));
                taken += 1;
            }
        }
    }

    /// Select up to `max` peers for an announcer from a swarm stored as a
    /// run of leechers and a run of seeders. `excluded_in` is how many
    /// entries of each run the exclusion will skip (0 or 1: the announcer
    /// itself).
    pub fn select<T>(
        &mut self,
        (leechers, seeders): (&[T], &[T]),
        announcer_is_seeder: bool,
        excluded_in: (usize, usize),
        max: usize,
    ) where
        X: FnMut(&T) -> bool,
        F: FnMut(&T) -> O,
    {
        if announcer_is_seeder {
            self.extend_with_random(leechers, max);
            return;
        }
        let l_avail = leechers.len().saturating_sub(excluded_in.0);
        let s_avail = seeders.len().saturating_sub(excluded_in.1);
        let total = s_avail + l_avail;
        if total == 0 || max == 0 {
            return;
        }
        // Seeders in proportion to their part of the swarm, then each kind
        // tops up what the other lacks.
        let proportional = max.saturating_mul(s_avail) / total;
        let want_leechers = (max - proportional.min(max)).min(l_avail);
        let want_seeders = (max - want_leechers).min(s_avail);
        self.extend_with_random(seeders, want_seeders);
        self.extend_with_random(leechers, want_leechers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;

    type TestChoice<'a, X> = Choice<'a, SmallRng, X, u32, fn(&u32) -> u32>;

    /// Entries chosen as themselves.
    fn choice<'a, X: FnMut(&u32) -> bool>(
        rng: &'a mut SmallRng,
        is_excluded: X,
        out: &'a mut Vec<u32>,
    ) -> TestChoice<'a, X> {
        let f: fn(&u32) -> u32 = |k| *k;
        Choice {
            rng,
            is_excluded,
            out,
            f,
        }
    }

    #[test]
    fn never_returns_excluded_and_respects_max() {
        let mut rng = SmallRng::seed_from_u64(1);
        let v: Vec<u32> = (0..10).collect();
        for max in 0..15 {
            for _ in 0..50 {
                let mut out = Vec::new();
                choice(&mut rng, |k| *k == 3, &mut out).extend_with_random(&v, max);
                assert!(!out.contains(&3));
                assert_eq!(out.len(), max.min(9));
                let unique: HashSet<_> = out.iter().collect();
                assert_eq!(unique.len(), out.len());
            }
        }
    }

    #[test]
    fn seeder_gets_only_leechers() {
        let mut rng = SmallRng::seed_from_u64(2);
        let seeders: Vec<u32> = (0..100).collect();
        let leechers: Vec<u32> = (100..105).collect();
        let mut out = Vec::new();
        choice(&mut rng, |k| *k == 0, &mut out).select((&leechers, &seeders), true, (0, 1), 50);
        out.sort();
        assert_eq!(out, vec![100, 101, 102, 103, 104]);
    }

    #[test]
    fn leecher_gets_both_kinds_without_duplicates() {
        let mut rng = SmallRng::seed_from_u64(3);
        for (s, l, max) in [
            (100, 3, 50),
            (3, 100, 50),
            (10, 10, 50),
            (0, 5, 3),
            (5, 0, 3),
            (30, 2, 10),
        ] {
            let seeders: Vec<u32> = (0..s).collect();
            let leechers: Vec<u32> = (1000..1000 + l).collect();
            let excluded_in = (usize::from(l > 0), 0);
            for _ in 0..20 {
                let mut out = Vec::new();
                let runs = (&leechers[..], &seeders[..]);
                choice(&mut rng, |k| *k == 1000, &mut out).select(runs, false, excluded_in, max);
                let unique: HashSet<_> = out.iter().collect();
                assert_eq!(unique.len(), out.len(), "{s} {l} {max}: {out:?}");
                assert!(!out.contains(&1000));
                let available = s as usize + (l as usize).saturating_sub(1);
                assert_eq!(out.len(), max.min(available), "{s} {l} {max}");
            }
        }
    }

    #[test]
    fn selection_varies() {
        let mut rng = SmallRng::seed_from_u64(4);
        let v: Vec<u32> = (0..1000).collect();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let mut out = Vec::new();
            choice(&mut rng, |_| false, &mut out).extend_with_random(&v, 10);
            seen.extend(out);
        }
        assert!(seen.len() > 100);
    }
}

//! Choosing the peers sent back in an announce response.
//!
//! Works on slices, so any swarm storage that keeps leechers and seeders in
//! contiguous runs (see [`crate::peer_store`]) can use it. A random window
//! is read, wrapping around; the announcer is never returned. A seeder is
//! only sent leechers; a leecher gets seeders and leechers in proportion.

use rand::Rng;

/// Append up to `max` entries of `slice`, starting at a random index and
/// wrapping around, skipping entries for which `is_excluded` holds.
pub fn extend_with_random<T, O, R, X, F>(
    rng: &mut R,
    slice: &[T],
    mut is_excluded: X,
    max: usize,
    out: &mut Vec<O>,
    mut f: F,
) where
    R: Rng,
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
        rng.random_range(0..len)
    };
    // `start < len`, so the split always succeeds.
    let (head, tail) = slice.split_at_checked(start).unwrap_or((&[], slice));
    let mut taken = 0;
    for item in tail.iter().chain(head) {
        if taken == max {
            break;
        }
        if !is_excluded(item) {
            out.push(f(item));
            taken += 1;
        }
    }
}

/// Select up to `max` peers for an announcer from a swarm stored as a run
/// of leechers and a run of seeders. `excluded_in` is how many entries of
/// each run the exclusion will skip (0 or 1: the announcer itself).
#[allow(clippy::too_many_arguments)] // each argument is a distinct part of the choice
pub fn select_response_peers<T, O, R, X, F>(
    rng: &mut R,
    leechers: &[T],
    seeders: &[T],
    announcer_is_seeder: bool,
    mut is_excluded: X,
    excluded_in: (usize, usize),
    max: usize,
    out: &mut Vec<O>,
    mut f: F,
) where
    R: Rng,
    X: FnMut(&T) -> bool,
    F: FnMut(&T) -> O,
{
    if announcer_is_seeder {
        extend_with_random(rng, leechers, is_excluded, max, out, f);
        return;
    }
    let l_avail = leechers.len().saturating_sub(excluded_in.0);
    let s_avail = seeders.len().saturating_sub(excluded_in.1);
    let total = s_avail + l_avail;
    if total == 0 || max == 0 {
        return;
    }
    // Seeders in proportion to their part of the swarm, then each kind tops
    // up what the other lacks.
    let proportional = max.saturating_mul(s_avail) / total;
    let want_leechers = (max - proportional.min(max)).min(l_avail);
    let want_seeders = (max - want_leechers).min(s_avail);
    extend_with_random(rng, seeders, &mut is_excluded, want_seeders, out, &mut f);
    extend_with_random(rng, leechers, &mut is_excluded, want_leechers, out, &mut f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;

    #[test]
    fn never_returns_excluded_and_respects_max() {
        let mut rng = SmallRng::seed_from_u64(1);
        let v: Vec<u32> = (0..10).collect();
        for max in 0..15 {
            for _ in 0..50 {
                let mut out = Vec::new();
                extend_with_random(&mut rng, &v, |k| *k == 3, max, &mut out, |k| *k);
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
        select_response_peers(
            &mut rng,
            &leechers,
            &seeders,
            true,
            |k| *k == 0,
            (0, 1),
            50,
            &mut out,
            |k| *k,
        );
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
                select_response_peers(
                    &mut rng,
                    &leechers,
                    &seeders,
                    false,
                    |k| *k == 1000,
                    excluded_in,
                    max,
                    &mut out,
                    |k| *k,
                );
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
            extend_with_random(&mut rng, &v, |_| false, 10, &mut out, |k| *k);
            seen.extend(out);
        }
        assert!(seen.len() > 100);
    }
}

//! Choosing the peers sent back in an announce response.
//!
//! Peers of a swarm live in `IndexMap`s, so a random window can be read by
//! index without walking the map. The announcer is never returned. A seeder
//! is only sent leechers; a leecher gets seeders and leechers in proportion.

use indexmap::IndexMap;
use rand::Rng;

/// Append up to `max` entries of `map`, starting at a random index and
/// wrapping around, skipping the key `exclude`. `f` turns an entry into the
/// response type.
pub fn extend_with_random<K, V, S, O, R, F>(
    rng: &mut R,
    map: &IndexMap<K, V, S>,
    exclude: Option<&K>,
    max: usize,
    out: &mut Vec<O>,
    mut f: F,
) where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
    R: Rng,
    F: FnMut(&K, &V) -> O,
{
    let len = map.len();
    if max == 0 || len == 0 {
        return;
    }
    let start = if len <= max {
        0
    } else {
        rng.random_range(0..len)
    };
    let mut taken = 0;
    for i in 0..len {
        if taken == max {
            break;
        }
        let index = (start + i) % len;
        if let Some((k, v)) = map.get_index(index) {
            if exclude == Some(k) {
                continue;
            }
            out.push(f(k, v));
            taken += 1;
        }
    }
}

/// Select up to `max` peers for an announcer. `announcer_is_seeder` decides
/// whether seeders are offered at all; `exclude` is the announcer's key.
#[allow(clippy::too_many_arguments)] // each argument is a distinct part of the choice
pub fn select_response_peers<K, V, S, O, R, F>(
    rng: &mut R,
    seeders: &IndexMap<K, V, S>,
    leechers: &IndexMap<K, V, S>,
    announcer_is_seeder: bool,
    exclude: Option<&K>,
    max: usize,
    out: &mut Vec<O>,
    mut f: F,
) where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
    R: Rng,
    F: FnMut(&K, &V) -> O,
{
    if announcer_is_seeder {
        extend_with_random(rng, leechers, exclude, max, out, f);
        return;
    }
    let available = |map: &IndexMap<K, V, S>| {
        map.len() - usize::from(exclude.is_some_and(|k| map.contains_key(k)))
    };
    let (s_avail, l_avail) = (available(seeders), available(leechers));
    let total = s_avail + l_avail;
    if total == 0 || max == 0 {
        return;
    }
    // Seeders in proportion to their part of the swarm, then each kind tops
    // up what the other lacks.
    let proportional = max.saturating_mul(s_avail) / total;
    let want_leechers = (max - proportional.min(max)).min(l_avail);
    let want_seeders = (max - want_leechers).min(s_avail);
    extend_with_random(rng, seeders, exclude, want_seeders, out, &mut f);
    extend_with_random(rng, leechers, exclude, want_leechers, out, &mut f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::collections::HashSet;

    fn map(range: std::ops::Range<u32>) -> IndexMap<u32, ()> {
        range.map(|k| (k, ())).collect()
    }

    #[test]
    fn never_returns_excluded_and_respects_max() {
        let mut rng = SmallRng::seed_from_u64(1);
        let m = map(0..10);
        for max in 0..15 {
            for _ in 0..50 {
                let mut out = Vec::new();
                extend_with_random(&mut rng, &m, Some(&3), max, &mut out, |k, _| *k);
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
        let seeders = map(0..100);
        let leechers = map(100..105);
        let mut out = Vec::new();
        select_response_peers(
            &mut rng,
            &seeders,
            &leechers,
            true,
            Some(&0),
            50,
            &mut out,
            |k, _| *k,
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
            let seeders = map(0..s);
            let leechers = map(1000..1000 + l);
            for _ in 0..20 {
                let mut out = Vec::new();
                select_response_peers(
                    &mut rng,
                    &seeders,
                    &leechers,
                    false,
                    Some(&1000),
                    max,
                    &mut out,
                    |k, _| *k,
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
        let m = map(0..1000);
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let mut out = Vec::new();
            extend_with_random(&mut rng, &m, None, 10, &mut out, |k, _| *k);
            seen.extend(out);
        }
        assert!(seen.len() > 100);
    }
}

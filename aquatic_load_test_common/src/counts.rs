//! Counters: a load tester's own struct of plain `u64` counts that each
//! worker bumps in its hot loop, and shared atomic totals the workers add
//! them to once per poll round.
//!
//! A load tester declares its counts as an ordinary struct of `u64` fields
//! and lists them in [`impl_counts!`](crate::impl_counts); [`SharedCounts`]
//! and the progress lines then work for it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed set of `u64` counters, addressed by index (declaration order).
/// Implement it with [`impl_counts!`](crate::impl_counts).
pub trait Counts: Copy + Default + Send + Sync + 'static {
    /// Number of counters.
    const LEN: usize;

    /// Counter `index` (0 beyond `LEN`).
    fn get(&self, index: usize) -> u64;

    /// Counts with counter `i` set to `f(i)`, for `i` in `0..LEN` in order.
    fn from_fn(f: impl FnMut(usize) -> u64) -> Self;

    /// Counter-wise difference, for the counts of one interval.
    fn since(&self, earlier: &Self) -> Self {
        Self::from_fn(|i| self.get(i).saturating_sub(earlier.get(i)))
    }
}

/// Implement [`Counts`] for a struct whose listed fields are all `u64`
/// (every field: `from_fn` builds the struct from them):
///
/// ```
/// #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
/// pub struct MyCounts {
///     pub announce: u64,
///     pub timeouts: u64,
/// }
/// aquatic_load_test_common::impl_counts!(MyCounts { announce, timeouts });
///
/// use aquatic_load_test_common::Counts;
/// let a = MyCounts { announce: 5, timeouts: 1 };
/// let b = MyCounts { announce: 2, timeouts: 3 };
/// assert_eq!(a.since(&b), MyCounts { announce: 3, timeouts: 0 });
/// ```
#[macro_export]
macro_rules! impl_counts {
    ($name:ident { $($field:ident),+ $(,)? }) => {
        impl $crate::Counts for $name {
            const LEN: usize = [$(stringify!($field)),+].len();

            fn get(&self, index: usize) -> u64 {
                let mut next = 0usize..;
                $(
                    if next.next() == Some(index) {
                        return self.$field;
                    }
                )+
                0
            }

            fn from_fn(mut f: impl FnMut(usize) -> u64) -> Self {
                let mut next = 0usize..;
                // Struct fields are evaluated in the order written.
                $name {
                    $($field: f(next.next().unwrap_or(0)),)+
                }
            }
        }
    };
}

/// Totals of counts `C` shared by all workers; read by the main thread.
#[derive(Debug)]
pub struct SharedCounts<C> {
    totals: Box<[AtomicU64]>,
    /// Requests still unanswered when the workers stopped.
    in_flight_at_end: AtomicU64,
    _counts: std::marker::PhantomData<fn() -> C>,
}

impl<C: Counts> Default for SharedCounts<C> {
    fn default() -> Self {
        Self {
            totals: (0..C::LEN).map(|_| AtomicU64::new(0)).collect(),
            in_flight_at_end: AtomicU64::new(0),
            _counts: std::marker::PhantomData,
        }
    }
}

impl<C: Counts> SharedCounts<C> {
    /// Add `local` to the totals and zero it.
    pub fn add_and_reset(&self, local: &mut C) {
        for (i, total) in self.totals.iter().enumerate() {
            let value = local.get(i);
            if value != 0 {
                total.fetch_add(value, Ordering::Relaxed);
            }
        }
        *local = C::default();
    }

    pub fn add_in_flight_at_end(&self, n: u64) {
        self.in_flight_at_end.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> C {
        C::from_fn(|i| {
            self.totals
                .get(i)
                .map_or(0, |total| total.load(Ordering::Relaxed))
        })
    }

    pub fn in_flight_at_end(&self) -> u64 {
        self.in_flight_at_end.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct Three {
        a: u64,
        b: u64,
        c: u64,
    }
    crate::impl_counts!(Three { a, b, c });

    #[test]
    fn fields_by_index() {
        let t = Three { a: 1, b: 2, c: 3 };
        assert_eq!(Three::LEN, 3);
        assert_eq!((t.get(0), t.get(1), t.get(2), t.get(3)), (1, 2, 3, 0));
        assert_eq!(
            Three::from_fn(|i| 10 * i as u64),
            Three { a: 0, b: 10, c: 20 }
        );
        let earlier = Three { a: 0, b: 5, c: 1 };
        assert_eq!(t.since(&earlier), Three { a: 1, b: 0, c: 2 });
    }

    #[test]
    fn shared_counts_accumulate() {
        let shared = SharedCounts::<Three>::default();
        let mut local = Three { a: 5, b: 0, c: 6 };
        shared.add_and_reset(&mut local);
        assert_eq!(local, Three::default());
        local.a = 1;
        shared.add_and_reset(&mut local);
        assert_eq!(shared.snapshot(), Three { a: 6, b: 0, c: 6 });
        shared.add_in_flight_at_end(2);
        shared.add_in_flight_at_end(1);
        assert_eq!(shared.in_flight_at_end(), 3);
    }
}

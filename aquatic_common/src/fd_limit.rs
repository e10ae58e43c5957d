//! File descriptors for the connections the config asks for.
//!
//! Each open TCP connection is a descriptor. At start the daemon raises
//! its soft `RLIMIT_NOFILE` (up to the hard limit, which needs no
//! privilege) to what `socket_workers x max_connections` need plus a
//! reserve for everything else (listeners, epoll and wake-up descriptors,
//! the metrics endpoint, state and access-list files, logs). Where the
//! hard limit is lower, `max_connections` is lowered to fit, with one
//! warning, so the tracker never runs out of descriptors with connections
//! it has promised room for: accept does not fail, and the daemon's own
//! files can always be opened.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections.
pub const RESERVED: u64 = 256;

/// What to set the soft limit to, and the connections per socket worker
/// that fit, for limits `(soft, hard)`.
pub fn plan(soft: u64, hard: u64, socket_workers: usize, max_connections: usize) -> (u64, usize) {
    let workers = (socket_workers as u64).max(1);
    let needed = workers
        .saturating_mul(max_connections as u64)
        .saturating_add(RESERVED);
    // Never lower a soft limit someone set higher on purpose.
    let soft = soft.max(needed.min(hard));
    if soft >= needed {
        return (soft, max_connections);
    }
    let fitting = soft.saturating_sub(RESERVED) / workers;
    (soft, usize::try_from(fitting).unwrap_or(usize::MAX).max(1))
}

/// Raise the soft `RLIMIT_NOFILE` for `max_connections` per socket worker;
/// the connections per worker that fit (`max_connections` itself, unless
/// the hard limit is too low: then fewer, and a warning says how to give
/// more).
pub fn fit_connections(socket_workers: usize, max_connections: usize) -> usize {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            log::warn!("cannot read the open-file limit ({err}); network.max_connections kept");
            return max_connections;
        }
    };
    let (new_soft, fitting) = plan(soft, hard, socket_workers, max_connections);
    if new_soft != soft {
        if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard) {
            let fitting = plan(soft, soft, socket_workers, max_connections).1;
            log::warn!(
                "cannot raise the open-file limit from {soft} to {new_soft} ({err}): network.max_connections lowered from {max_connections} to {fitting} per socket worker"
            );
            return fitting;
        }
    }
    if fitting < max_connections {
        log::warn!(
            "network.max_connections lowered from {max_connections} to {fitting} per socket worker: the open-file limit is {hard} (with {RESERVED} kept for the daemon itself); raise it (LimitNOFILE= in the systemd unit, ulimit -n) to allow more"
        );
    }
    fitting
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_raised_or_connections_lowered() {
        // Room enough: raised to what is needed, nothing lowered.
        assert_eq!(plan(1024, 1 << 20, 2, 10_000), (20_256, 10_000));
        // A hard limit too low: up to it, and connections fit inside.
        assert_eq!(plan(1024, 20_000, 1, 50_000), (20_000, 19_744));
        assert_eq!(plan(1024, 20_000, 4, 50_000), (20_000, 4936));
        // A higher soft limit is kept.
        assert_eq!(plan(1 << 20, 1 << 20, 1, 10), (1 << 20, 10));
        // Absurd inputs neither overflow nor reach zero connections.
        assert_eq!(plan(10, 10, 1, usize::MAX).1, 1);
        assert_eq!(plan(0, u64::MAX, 0, usize::MAX).1, usize::MAX);
    }

    #[test]
    fn the_process_limit_is_at_least_what_is_needed_afterwards() {
        let fitting = fit_connections(1, 100);
        assert_eq!(fitting, 100);
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert!(soft >= 100 + RESERVED);
    }
}

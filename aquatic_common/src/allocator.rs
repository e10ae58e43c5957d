//! Returning freed memory to the system after a shard's cleaning.
//!
//! The daemons run on mimalloc, which hands pages freed by one thread back
//! to the system lazily, from its allocation slow path. After a cleaning
//! that dropped many peers (the end of a flood, say) a quiet shard owner
//! could keep them resident for long; at one cleaning a minute asking
//! mimalloc to collect costs nothing that matters.
//!
//! The only `unsafe` here is the call into mimalloc's C API.

/// Ask mimalloc to return this thread's freed memory to the system at once.
/// Harmless when mimalloc is not the global allocator (as in unit tests):
/// it then collects mimalloc's own, empty heap.
pub fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointers and touches only mimalloc's own
    // state for the calling thread (and abandoned segments, under its own
    // locks); mimalloc allows it at any time on any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn collecting_is_harmless_and_memory_stays_usable() {
        let before: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 1000]).collect();
        drop(before);
        super::return_freed_memory();
        let after: Vec<u8> = vec![7; 1 << 20];
        assert!(after.iter().all(|&b| b == 7));
        super::return_freed_memory();
    }
}

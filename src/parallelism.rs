//! How many threads an open may keep busy: the cores this process may run
//! on, read once. `std::thread::available_parallelism` reads the affinity
//! mask and the cgroup's CPU quota (a few system calls and files) on every
//! call; an open asks twice, and a node may be opened often (a supervisor
//! restarting it, a test reopening it thousands of times).

use std::num::NonZeroUsize;
use std::sync::OnceLock;

/// The cores available to this process (at least 1), as first read.
pub(crate) fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

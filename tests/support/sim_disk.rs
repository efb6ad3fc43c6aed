//! A simulated disk behind cpwal's io seam ([`Storage`], [`StorageFile`]),
//! able to lose power, fail a sync, fill up, rot and serve stale data.
//!
//! Model (the fault model of `src/format.rs`, made executable):
//! * Each file (inode) has a *durable* image (what the platter holds) and a
//!   *volatile* image (what the page cache shows). `write_at` and `allocate`
//!   change the volatile image and mark the written 512-byte sectors dirty;
//!   `sync_data` copies volatile to durable, length included (`fdatasync`
//!   persists the size needed to read the data back).
//! * The directory has a durable name table and a volatile one. Every
//!   create, rename and remove is applied to the volatile table and appended
//!   to a journal; `sync_directory` makes the whole journal durable.
//! * [`SimDisk::crash`] keeps, for the directory, either a seeded *prefix*
//!   of the unsynced journal (half the crashes: what journaling file systems
//!   such as ext4 and xfs do, committing metadata operations in order) or a
//!   seeded *subset* of it, applied in order (the other half: POSIX promises
//!   no order for unsynced directory changes, and file systems without an
//!   ordered journal keep any of them). A rename whose source was not kept
//!   is dropped too. The engine syncs the directory after every change that
//!   matters, so it must pass under both. For every surviving file it keeps
//!   either the durable or the volatile length, and for each dirty sector,
//!   independently, either its old durable content or its new one. Files no
//!   durable name points to are gone. Every handle opened before the crash
//!   is dead (its calls fail), as a process's handles are after power loss.
//! * A *power cut* ([`SimDisk::cut_power_before_operation`]) makes the disk
//!   refuse the n-th mutating operation and every call after it, so the
//!   engine stops exactly there; [`SimDisk::crash`] then decides what
//!   survived. Mutating operations are create, rename, remove,
//!   sync_directory, allocate, write_at and sync_data; counting them (not
//!   only syncs) lets a test crash between every write of a multi-file
//!   operation, not just at sync points.
//! * A *process crash* (SIGKILL, OOM, a panic: [`SimDisk::kill_before_operation`]
//!   and [`SimDisk::restart_process`]) stops the node the same way, but the
//!   machine keeps running: the page cache (every volatile image), the
//!   unsynced directory changes and the dirty sectors all survive, still
//!   unsynced, and a later power cut may lose them. Only the handles die.
//!   This is the case a power-cut-only simulator never builds: a restarted
//!   node reads the page cache, so it must make durable whatever it is about
//!   to trust before it serves it.
//! * A *failed sync* ([`SimDisk::fail_sync`]) follows Linux: `fdatasync`
//!   returns EIO once, and the file's dirty pages are marked clean whether
//!   or not they reached the platter (each 4 KiB page, seeded, either did or
//!   did not). The page cache still shows the new bytes, so a reopen in the
//!   same boot reads them back, and a later successful sync does not write
//!   them again: only rewriting them makes them durable. A failed directory
//!   sync makes nothing durable.
//!
//! * Subdirectories ([`Storage::open_subdirectory`]) share the disk, its
//!   power and its crashes. A subdirectory is an entry of its parent, made
//!   durable like a file's by a sync of the parent; each directory's sync
//!   makes only its own changes durable. A crash drops every file whose
//!   directory's entry did not survive.
//!
//! Faults are injected per instance; there are no globals.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use cpwal::io::{DirectoryEntry, FileKind, Storage, StorageFile};

/// The unit a torn write keeps or loses whole.
pub const SECTOR_BYTES: u64 = 512;

/// The unit of page-cache writeback: a failed sync loses or keeps each such
/// page whole.
pub const PAGE_BYTES: u64 = 4096;

/// A tiny seeded PRNG (splitmix64): deterministic, so every run replays from
/// its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One file's two images.
#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Sectors written since the last successful sync.
    dirty: BTreeSet<u64>,
}

impl Inode {
    /// A successful `fdatasync`: the dirty sectors and the length reach the
    /// platter. Only the dirty ones: a page a failed sync marked clean keeps
    /// its old durable content even though the page cache shows new bytes.
    fn sync(&mut self) {
        self.durable.resize(self.volatile.len(), 0);
        for &sector in &self.dirty {
            let start = (sector * SECTOR_BYTES) as usize;
            let end = (start + SECTOR_BYTES as usize).min(self.volatile.len());
            if start < end {
                self.durable[start..end].copy_from_slice(&self.volatile[start..end]);
            }
        }
        self.dirty.clear();
    }

    /// A writeback that failed, as Linux reports it: every dirty page is
    /// marked clean; `rng` decides, page by page, whether its new content
    /// reached the platter. The volatile image (the page cache) keeps the
    /// new bytes either way.
    fn fail_writeback(&mut self, rng: &mut Rng) {
        let sectors_per_page = PAGE_BYTES / SECTOR_BYTES;
        let pages: BTreeSet<u64> = self.dirty.iter().map(|s| s / sectors_per_page).collect();
        for page in pages {
            if !rng.chance(1, 2) {
                continue;
            }
            let start = (page * PAGE_BYTES) as usize;
            let end = (start + PAGE_BYTES as usize).min(self.volatile.len());
            if self.durable.len() < end {
                self.durable.resize(end, 0);
            }
            if start < end {
                self.durable[start..end].copy_from_slice(&self.volatile[start..end]);
            }
        }
        self.dirty.clear();
    }

    /// What a crash leaves of this file: the volatile length if
    /// `keep_length` (else the durable one), and per dirty sector its new
    /// content if `keep_sector(sector)` (else its old one).
    fn settle(&mut self, keep_length: bool, keep_sector: &mut dyn FnMut(u64) -> bool) {
        let length = if keep_length {
            self.volatile.len()
        } else {
            self.durable.len()
        };
        let mut result = self.durable.clone();
        result.resize(length, 0);
        for &sector in &self.dirty {
            let start = (sector * SECTOR_BYTES) as usize;
            let end = (start + SECTOR_BYTES as usize)
                .min(length)
                .min(self.volatile.len());
            if start < end && keep_sector(sector) {
                result[start..end].copy_from_slice(&self.volatile[start..end]);
            }
        }
        self.durable = result.clone();
        self.volatile = result;
        self.dirty.clear();
    }
}

/// An unsynced directory change, in the order it was made.
#[derive(Debug, Clone)]
enum DirectoryChange {
    Link { name: String, inode: u64 },
    Rename { from: String, to: String },
    Unlink { name: String },
}

/// The directory holding `name` (a path from the disk's root, ending in
/// `/`; "" for the root); a subdirectory's own entry, `name/`, belongs to
/// its parent.
fn directory_of(name: &str) -> &str {
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    trimmed.rfind('/').map_or("", |end| &name[..=end])
}

/// `name` without its directory.
fn local_name(name: &str) -> &str {
    &name[directory_of(name).len()..]
}

impl DirectoryChange {
    /// The directory this change is made in.
    fn directory(&self) -> &str {
        match self {
            DirectoryChange::Link { name, .. } | DirectoryChange::Unlink { name } => {
                directory_of(name)
            }
            DirectoryChange::Rename { from, .. } => directory_of(from),
        }
    }

    fn apply(&self, table: &mut BTreeMap<String, u64>) {
        match self {
            DirectoryChange::Link { name, inode } => {
                table.insert(name.clone(), *inode);
            }
            DirectoryChange::Rename { from, to } => {
                if let Some(inode) = table.remove(from) {
                    table.insert(to.clone(), inode);
                }
            }
            DirectoryChange::Unlink { name } => {
                table.remove(name);
            }
        }
    }
}

/// Counters a test reads to find crash points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Mutating operations so far (see the module doc).
    pub operations: u64,
    /// `sync_data` and `sync_directory` calls so far.
    pub syncs: u64,
    /// Syncs failed on purpose since the last crash or process restart.
    pub failed_syncs: u64,
}

/// How an armed interruption stops the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The power fails: [`SimDisk::crash`] decides what survived.
    PowerCut,
    /// The process dies (SIGKILL, OOM, panic) and the machine runs on: the
    /// page cache and every unsynced change survive
    /// ([`SimDisk::restart_process`]).
    ProcessKill,
}

/// The kinds of mutating operation, as the triggers of targeted faults see
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `Storage::create`.
    Create,
    /// `Storage::rename` (the name is the source).
    Rename,
    /// `Storage::remove`.
    Remove,
    /// `Storage::sync_directory` (the name is empty).
    SyncDirectory,
    /// `StorageFile::allocate`.
    Allocate,
    /// `StorageFile::write_at`.
    Write,
    /// `StorageFile::sync_data`.
    SyncData,
}

/// One mutating operation: its kind and the file it touches (the file's
/// current name; empty for a directory sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// What it does.
    pub kind: OperationKind,
    /// The file's name.
    pub name: String,
}

impl Operation {
    /// Whether this is a sync (of a file or of the directory).
    pub fn is_sync(&self) -> bool {
        matches!(
            self.kind,
            OperationKind::SyncData | OperationKind::SyncDirectory
        )
    }
}

/// A predicate over operations, for targeted faults.
type Matcher = Box<dyn Fn(&Operation) -> bool + Send>;

/// Where an armed fault strikes.
enum Trigger {
    /// Mutating operation number n (1-based, counted from the disk's
    /// creation).
    Number(u64),
    /// The next operation the matcher accepts.
    Next(Matcher),
}

impl Trigger {
    fn fires(&self, number: u64, operation: &Operation) -> bool {
        match self {
            Trigger::Number(n) => *n == number,
            Trigger::Next(matches) => matches(operation),
        }
    }
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Number(n) => write!(f, "operation {n}"),
            Trigger::Next(_) => write!(f, "next matching operation"),
        }
    }
}

/// What happens to an operation once the faults had their say.
enum Fate {
    /// It runs.
    Proceed,
    /// A sync that fails with Linux's semantics (see the module doc); the
    /// number seeds which pages reached the platter anyway.
    FailSync(u64),
}

#[derive(Debug, Default)]
struct DiskState {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    durable_names: BTreeMap<String, u64>,
    volatile_names: BTreeMap<String, u64>,
    journal: Vec<DirectoryChange>,
    /// Bumped by every crash and process restart; handles of an older epoch
    /// are dead.
    epoch: u64,
    counters: DiskCounters,
    /// The node was stopped: every call fails until the next crash or
    /// process restart.
    stopped: Option<Stop>,
    stop_at: Option<(Trigger, Stop)>,
    fail_sync_at: Option<Trigger>,
    /// The next operation the trigger accepts fails with EIO, changing
    /// nothing ([`SimDisk::fail_next`]).
    fail_call_at: Option<Trigger>,
    space_budget_bytes: Option<u64>,
    /// How long each `sync_data` waits before it starts, without holding
    /// the disk ([`SimDisk::set_sync_delay`]).
    sync_delay: std::time::Duration,
    /// The next `sync_data` panics ([`SimDisk::panic_in_next_sync`]).
    panic_in_next_sync: bool,
    /// The next `start_write_back` fails
    /// ([`SimDisk::fail_next_start_write_back`]).
    fail_next_start_write_back: bool,
}

fn dead() -> io::Error {
    io::Error::other("simulated disk: the node was stopped (power cut or process kill)")
}

fn stale_handle() -> io::Error {
    io::Error::other("simulated disk: handle from before a crash or restart")
}

impl DiskState {
    /// Counts one mutating operation and applies a pending stop or failure.
    fn begin_mutation(&mut self, kind: OperationKind, name: &str) -> io::Result<Fate> {
        if self.stopped.is_some() {
            return Err(dead());
        }
        self.counters.operations += 1;
        let number = self.counters.operations;
        let operation = Operation {
            kind,
            name: name.to_owned(),
        };
        if let Some((trigger, stop)) = &self.stop_at {
            if trigger.fires(number, &operation) {
                self.stopped = Some(*stop);
                self.stop_at = None;
                return Err(dead());
            }
        }
        if let Some(trigger) = &self.fail_call_at {
            if trigger.fires(number, &operation) {
                self.fail_call_at = None;
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
        }
        if !operation.is_sync() {
            return Ok(Fate::Proceed);
        }
        self.counters.syncs += 1;
        match &self.fail_sync_at {
            Some(trigger) if trigger.fires(self.counters.syncs, &operation) => {
                self.fail_sync_at = None;
                self.counters.failed_syncs += 1;
                Ok(Fate::FailSync(number))
            }
            _ => Ok(Fate::Proceed),
        }
    }

    /// After a power loss settled the images: the page cache is the disk,
    /// every handle is dead, the power is back and no fault is armed.
    fn power_on_after_crash(&mut self) {
        self.fail_call_at = None;
        self.volatile_names = self.durable_names.clone();
        self.epoch += 1;
        self.stopped = None;
        self.stop_at = None;
        self.fail_sync_at = None;
        self.counters.failed_syncs = 0;
    }

    /// Forgets the durable names in a subdirectory whose own entry is not
    /// durable: after a crash nothing leads to them.
    fn drop_unreachable_names(&mut self) {
        let names = self.durable_names.clone();
        let reachable = |name: &str| {
            let directory = directory_of(name);
            directory.is_empty() || names.contains_key(directory)
        };
        self.durable_names.retain(|name, _| reachable(name));
    }

    /// The current name of `inode` (empty if it has none).
    fn name_of(&self, inode: u64) -> String {
        self.volatile_names
            .iter()
            .find(|(_, &i)| i == inode)
            .map(|(name, _)| name.clone())
            .unwrap_or_default()
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.volatile.len() as u64).sum()
    }

    /// Fails with ENOSPC if growing a file by `extra` bytes exceeds the budget.
    fn reserve(&self, extra: u64) -> io::Result<()> {
        match self.space_budget_bytes {
            Some(budget) if self.used_bytes() + extra > budget => {
                Err(io::Error::from_raw_os_error(28))
            }
            _ => Ok(()),
        }
    }

    fn inode_of(&self, name: &str) -> io::Result<u64> {
        self.volatile_names
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn durable_inode_mut(&mut self, name: &str) -> &mut Inode {
        let inode = self.durable_names[name];
        self.inodes.get_mut(&inode).expect("named inode exists")
    }
}

/// A simulated disk holding one data directory. Cloning shares the disk.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    /// The directory this handle stands for: "" for the root, `name/` for
    /// a subdirectory (see [`Storage::open_subdirectory`]).
    directory: String,
}

impl std::fmt::Debug for SimDisk {
    /// Names and counters only: file images would drown a failure report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDisk")
            .field("durable_names", &state.durable_names.keys())
            .field("counters", &state.counters)
            .field("stopped", &state.stopped)
            .finish()
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panicking test thread must not hide the disk from the reporter.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters so far.
    pub fn counters(&self) -> DiskCounters {
        self.lock().counters
    }

    /// The power goes off just before mutating operation number `operation`
    /// (counted from this disk's creation, 1-based): that call and every
    /// later one fail until [`SimDisk::crash`].
    pub fn cut_power_before_operation(&self, operation: u64) {
        self.stop_before_operation(operation, Stop::PowerCut);
    }

    /// The process is killed just before mutating operation number
    /// `operation`: that call and every later one fail until
    /// [`SimDisk::restart_process`] (or a [`SimDisk::crash`]).
    pub fn kill_before_operation(&self, operation: u64) {
        self.stop_before_operation(operation, Stop::ProcessKill);
    }

    /// Arms `stop` just before mutating operation number `operation`;
    /// `u64::MAX` disarms.
    pub fn stop_before_operation(&self, operation: u64, stop: Stop) {
        self.lock().stop_at = Some((Trigger::Number(operation), stop));
    }

    /// Arms `stop` just before the next mutating operation `matches`
    /// accepts (a targeted crash: "before the directory sync after the
    /// first rename").
    pub fn stop_before_next(
        &self,
        stop: Stop,
        matches: impl Fn(&Operation) -> bool + Send + 'static,
    ) {
        self.lock().stop_at = Some((Trigger::Next(Box::new(matches)), stop));
    }

    /// Whether an armed stop (power cut or process kill) has happened and
    /// not yet been crashed or restarted through.
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped.is_some()
    }

    /// How the node was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.lock().stopped
    }

    /// Whether an injected fault explains a failed call: the node was
    /// stopped, or a sync failed on purpose since the last crash or restart.
    pub fn has_failed(&self) -> bool {
        let state = self.lock();
        state.stopped.is_some() || state.counters.failed_syncs > 0
    }

    /// Sync number `sync` (1-based, counting `sync_data` and
    /// `sync_directory`) fails with EIO, with Linux's semantics (see the
    /// module doc).
    pub fn fail_sync(&self, sync: u64) {
        self.lock().fail_sync_at = Some(Trigger::Number(sync));
    }

    /// Each `sync_data` waits `delay` before it starts (other calls run
    /// meanwhile), as a slow disk's would: long enough for other threads to
    /// write and sync beside it. The sync covers what was written by the
    /// time it starts, as `fdatasync` covers at least what was written
    /// before it was called.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().sync_delay = delay;
    }

    /// The next `start_write_back` fails with EIO, as where the kernel
    /// reports pages it could not queue. (Otherwise the call does nothing
    /// here: the simulated disk has no writeback to start, and it is not
    /// counted as an operation.)
    pub fn fail_next_start_write_back(&self) {
        self.lock().fail_next_start_write_back = true;
    }

    /// The next `sync_data` panics before it syncs anything, as a buggy
    /// storage implementation might.
    pub fn panic_in_next_sync(&self) {
        self.lock().panic_in_next_sync = true;
    }

    /// The next sync `matches` accepts fails with EIO, with Linux's
    /// semantics (see the module doc).
    pub fn fail_next_sync(&self, matches: impl Fn(&Operation) -> bool + Send + 'static) {
        self.lock().fail_sync_at = Some(Trigger::Next(Box::new(matches)));
    }

    /// The next mutating call of `kind` on a file whose name (without its
    /// directory) starts with `name_prefix` fails with EIO and changes
    /// nothing (for `SyncDirectory`, use ""). Unlike [`SimDisk::fail_sync`],
    /// a failed sync here has no Linux writeback semantics: nothing at all
    /// happened.
    pub fn fail_next(&self, kind: OperationKind, name_prefix: &str) {
        let prefix = name_prefix.to_owned();
        let matches = move |operation: &Operation| {
            operation.kind == kind && local_name(&operation.name).starts_with(prefix.as_str())
        };
        self.lock().fail_call_at = Some(Trigger::Next(Box::new(matches)));
    }

    /// The process restarts on a machine that kept running (after a
    /// [`Stop::ProcessKill`], or to kill it now): every handle dies, and
    /// everything else — the page cache, the dirty sectors, the unsynced
    /// directory changes — stays exactly as it was, still unsynced. Armed
    /// faults are disarmed.
    pub fn restart_process(&self) {
        let mut state = self.lock();
        assert_ne!(
            state.stopped,
            Some(Stop::PowerCut),
            "a power cut is followed by crash(), not by a process restart"
        );
        state.epoch += 1;
        state.stopped = None;
        state.stop_at = None;
        state.fail_sync_at = None;
        state.fail_call_at = None;
        state.counters.failed_syncs = 0;
    }

    /// Allocations and writes that would grow the files' total size beyond
    /// `budget` fail with ENOSPC; `None` lifts the limit.
    pub fn set_space_budget(&self, budget: Option<u64>) {
        self.lock().space_budget_bytes = budget;
    }

    /// Bytes the files occupy now.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Power loss: keeps a seeded prefix of the unsynced directory changes
    /// and, per file, a seeded subset of the unsynced sectors (see the module
    /// doc); every handle dies; the power comes back on.
    pub fn crash(&self, seed: u64) {
        self.crash_with(seed, false);
    }

    /// Power loss that keeps nothing unsynced: no directory change, no
    /// sector (the most pessimistic outcome, for deterministic tests).
    pub fn crash_losing_everything_unsynced(&self) {
        self.crash_with(0, true);
    }

    /// Power loss whose survivors the test chooses: every unsynced directory
    /// change or none, and each dirty sector `keep(file name, sector)` says
    /// (files keep their page-cache length). For deterministic tests of one
    /// exact torn state.
    pub fn crash_keeping(
        &self,
        keep_directory_changes: bool,
        mut keep: impl FnMut(&str, u64) -> bool,
    ) {
        let mut state = self.lock();
        let journal = std::mem::take(&mut state.journal);
        if keep_directory_changes {
            for change in &journal {
                change.apply(&mut state.durable_names);
            }
        }
        state.drop_unreachable_names();
        let names: Vec<(String, u64)> = state
            .durable_names
            .iter()
            .map(|(name, &inode)| (name.clone(), inode))
            .collect();
        state
            .inodes
            .retain(|inode, _| names.iter().any(|(_, i)| i == inode));
        for (name, inode) in names {
            let file = state.inodes.get_mut(&inode).expect("named inode exists");
            file.settle(true, &mut |sector| keep(&name, sector));
        }
        state.power_on_after_crash();
    }

    fn crash_with(&self, seed: u64, lose_everything: bool) {
        let mut rng = Rng::new(seed);
        let mut state = self.lock();
        let journal = std::mem::take(&mut state.journal);
        let kept = match (lose_everything, rng.below(2)) {
            (true, _) => Vec::new(),
            (false, 0) => {
                let prefix = rng.below(journal.len() as u64 + 1) as usize;
                journal[..prefix].to_vec()
            }
            (false, _) => journal
                .iter()
                .filter(|_| rng.chance(1, 2))
                .cloned()
                .collect(),
        };
        for change in &kept {
            change.apply(&mut state.durable_names);
        }
        state.drop_unreachable_names();
        // Mix all-or-nothing crashes with sector-by-sector ones: each extreme
        // is a case worth hitting often.
        let mode = if lose_everything { 0 } else { rng.below(4) };
        let live: BTreeSet<u64> = state.durable_names.values().copied().collect();
        state.inodes.retain(|inode, _| live.contains(inode));
        let mut inodes: Vec<_> = state.inodes.keys().copied().collect();
        inodes.sort_unstable();
        for inode in inodes {
            let file = state.inodes.get_mut(&inode).expect("listed");
            let mut keep_new = || match mode {
                0 => false,
                1 => true,
                _ => rng.chance(1, 2),
            };
            let keep_length = keep_new();
            file.settle(keep_length, &mut |_| keep_new());
        }
        state.power_on_after_crash();
    }

    /// Names in the durable directory table, sorted.
    pub fn durable_names(&self) -> Vec<String> {
        self.lock().durable_names.keys().cloned().collect()
    }

    /// The durable bytes of `name`, if the durable directory holds it.
    pub fn durable_image(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.durable_names.get(name)?;
        Some(state.inodes[inode].durable.clone())
    }

    /// Replaces `name`'s content, durably, with `bytes`, creating it if
    /// needed: a stale copy served in its place, a damaged file, or a fuzz
    /// input. Only between crashes (no unsynced state may exist for it).
    pub fn put_durable_file(&self, name: &str, bytes: &[u8]) {
        let mut state = self.lock();
        if !state.durable_names.contains_key(name) {
            let inode = state.next_inode;
            state.next_inode += 1;
            state.inodes.insert(inode, Inode::default());
            state.durable_names.insert(name.to_owned(), inode);
            state.volatile_names.insert(name.to_owned(), inode);
        }
        let file = state.durable_inode_mut(name);
        file.volatile = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.dirty.clear();
    }

    /// Removes `name` durably (a lost file).
    pub fn remove_durable_file(&self, name: &str) {
        let mut state = self.lock();
        state.durable_names.remove(name);
        state.volatile_names.remove(name);
    }

    /// Rot: flips bit `bit` of byte `offset` of `name`, in both images.
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) {
        let mut state = self.lock();
        let file = state.durable_inode_mut(name);
        file.durable[offset as usize] ^= 1 << bit;
        file.volatile[offset as usize] ^= 1 << bit;
    }

    /// Rot: zeroes the sector holding `offset` of `name`, in both images.
    pub fn zero_sector(&self, name: &str, offset: u64) {
        let mut state = self.lock();
        let file = state.durable_inode_mut(name);
        let start = (offset / SECTOR_BYTES * SECTOR_BYTES) as usize;
        for image in [&mut file.durable, &mut file.volatile] {
            let end = (start + SECTOR_BYTES as usize).min(image.len());
            image[start..end].fill(0);
        }
    }
}

/// A handle on one file of a [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    epoch: u64,
    writable: bool,
}

impl SimFile {
    /// Locks the disk and checks that this handle outlived no crash.
    fn state(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let state = self.disk.lock();
        if state.epoch != self.epoch {
            return Err(stale_handle());
        }
        Ok(state)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let state = self.state()?;
        Ok(state.inodes[&self.inode].volatile.len() as u64)
    }

    fn allocate(&self, length_bytes: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut state = self.state()?;
        let name = state.name_of(self.inode);
        state.begin_mutation(OperationKind::Allocate, &name)?;
        let current = state.inodes[&self.inode].volatile.len() as u64;
        if length_bytes > current {
            state.reserve(length_bytes - current)?;
            let file = state.inodes.get_mut(&self.inode).expect("open inode");
            file.volatile.resize(length_bytes as usize, 0);
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        let mut state = self.state()?;
        let name = state.name_of(self.inode);
        state.begin_mutation(OperationKind::Write, &name)?;
        let end = offset + bytes.len() as u64;
        let current = state.inodes[&self.inode].volatile.len() as u64;
        if end > current {
            state.reserve(end - current)?;
        }
        let file = state.inodes.get_mut(&self.inode).expect("open inode");
        if end > current {
            file.volatile.resize(end as usize, 0);
        }
        file.volatile[offset as usize..end as usize].copy_from_slice(bytes);
        if !bytes.is_empty() {
            file.dirty
                .extend(offset / SECTOR_BYTES..=(end - 1) / SECTOR_BYTES);
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, length: usize) -> io::Result<Cow<'_, [u8]>> {
        let state = self.state()?;
        if state.stopped.is_some() {
            return Err(dead());
        }
        let image = &state.inodes[&self.inode].volatile;
        let end = offset
            .checked_add(length as u64)
            .filter(|&end| end <= image.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(Cow::Owned(image[offset as usize..end as usize].to_vec()))
    }

    fn start_write_back(&self, _offset: u64, _length: u64) -> io::Result<()> {
        let mut state = self.state()?;
        if state.stopped.is_some() {
            return Err(dead());
        }
        if std::mem::take(&mut state.fail_next_start_write_back) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = self.state()?.sync_delay;
        // A sleep this short lasts a timer tick or more; yielding until the
        // delay has passed keeps it near what was asked.
        let started = std::time::Instant::now();
        while started.elapsed() < delay {
            std::thread::yield_now();
        }
        let mut state = self.state()?;
        if std::mem::take(&mut state.panic_in_next_sync) {
            drop(state);
            panic!("the simulated disk panics inside a sync, as asked");
        }
        let name = state.name_of(self.inode);
        let fate = state.begin_mutation(OperationKind::SyncData, &name)?;
        let file = state.inodes.get_mut(&self.inode).expect("open inode");
        match fate {
            Fate::Proceed => {
                file.sync();
                Ok(())
            }
            Fate::FailSync(number) => {
                file.fail_writeback(&mut Rng::new(number));
                Err(io::Error::from_raw_os_error(5)) // EIO
            }
        }
    }
}

impl SimDisk {
    /// `name` in this handle's directory, as the disk's tables key it.
    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.directory)
    }
}

impl Storage for SimDisk {
    type File = SimFile;

    fn list(&self) -> io::Result<Vec<DirectoryEntry>> {
        let state = self.lock();
        if state.stopped.is_some() {
            return Err(dead());
        }
        let here = |name: &&String| directory_of(name) == self.directory && !name.ends_with('/');
        let file = |name: &String| DirectoryEntry {
            name: name[self.directory.len()..].into(),
            kind: FileKind::RegularFile,
            mode: None,
        };
        Ok(state.volatile_names.keys().filter(here).map(file).collect())
    }

    fn create(&self, name: &str) -> io::Result<SimFile> {
        let mut state = self.lock();
        state.begin_mutation(OperationKind::Create, name)?;
        let name = self.full(name);
        if state.volatile_names.contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let inode = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(inode, Inode::default());
        state.volatile_names.insert(name.clone(), inode);
        state.journal.push(DirectoryChange::Link { name, inode });
        Ok(SimFile {
            disk: self.clone(),
            inode,
            epoch: state.epoch,
            writable: true,
        })
    }

    fn open(&self, name: &str, writable: bool) -> io::Result<SimFile> {
        let state = self.lock();
        if state.stopped.is_some() {
            return Err(dead());
        }
        Ok(SimFile {
            disk: self.clone(),
            inode: state.inode_of(&self.full(name))?,
            epoch: state.epoch,
            writable,
        })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.begin_mutation(OperationKind::Rename, from)?;
        let (from, to) = (self.full(from), self.full(to));
        let inode = state.inode_of(&from)?;
        state.volatile_names.remove(&from);
        state.volatile_names.insert(to.clone(), inode);
        state.journal.push(DirectoryChange::Rename { from, to });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.begin_mutation(OperationKind::Remove, name)?;
        let name = self.full(name);
        state.inode_of(&name)?;
        state.volatile_names.remove(&name);
        state.journal.push(DirectoryChange::Unlink { name });
        Ok(())
    }

    /// Makes this directory's changes durable (not its subdirectories').
    fn sync_directory(&self) -> io::Result<()> {
        let mut state = self.lock();
        if let Fate::FailSync(_) = state.begin_mutation(OperationKind::SyncDirectory, "")? {
            // Nothing became durable; the changes stay pending (a power cut
            // may still lose them).
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        let journal = std::mem::take(&mut state.journal);
        let (here, elsewhere) = journal
            .into_iter()
            .partition::<Vec<_>, _>(|change| change.directory() == self.directory);
        for change in &here {
            change.apply(&mut state.durable_names);
        }
        state.journal = elsewhere;
        Ok(())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        PathBuf::from("/sim").join(self.full(name))
    }

    /// The subdirectory `name`: created (one mutating operation) and this
    /// directory synced, unless it exists.
    fn open_subdirectory(&self, name: &str) -> cpwal::Result<Self> {
        let directory = format!("{}{name}/", self.directory);
        let path = self.path_of(name);
        let failed = |operation, source| cpwal::Error::Io {
            operation,
            path: path.clone(),
            source: Arc::new(source),
        };
        let mut state = self.lock();
        if state.stopped.is_some() {
            return Err(failed("open directory", dead()));
        }
        if !state.volatile_names.contains_key(&directory) {
            state
                .begin_mutation(OperationKind::Create, name)
                .map_err(|e| failed("create directory", e))?;
            let inode = state.next_inode;
            state.next_inode += 1;
            state.inodes.insert(inode, Inode::default());
            state.volatile_names.insert(directory.clone(), inode);
            state.journal.push(DirectoryChange::Link {
                name: directory.clone(),
                inode,
            });
        }
        // As `OsStorage::open` does: the parent is synced even when the
        // subdirectory exists, since a process killed between creating it
        // and syncing the parent leaves it visible but not yet durable.
        drop(state);
        self.sync_directory()
            .map_err(|e| failed("fsync directory", e))?;
        Ok(Self {
            state: Arc::clone(&self.state),
            directory,
        })
    }
}

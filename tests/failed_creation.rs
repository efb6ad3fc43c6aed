//! A creation that fails leaves nothing behind: on the simulated disk, every
//! sync and every allocation on the way to a new segment (the spare's
//! preparation, its header, the rename), a new node's hard state and a
//! compaction's snapshot is failed in turn, and after each failure the
//! directory must hold no temporary file. (The real-file-system version,
//! with a full tmpfs and ext4, is `tests/no_space.rs`.)

mod support;

use cpwal::{ControlPlaneEntry, DurableControlPlane, MembershipChange, Options};
use support::sim_disk::SimDisk;
use support::workload::voter;

fn options() -> Options {
    Options::default().with_segment_size_bytes(4096)
}

fn admit(n: u64) -> ControlPlaneEntry {
    let member = voter(&format!("CN=member-{n:04}-{}", "m".repeat(60)));
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

/// The cpwal temporary files the disk holds now.
fn temporaries(disk: &SimDisk) -> Vec<String> {
    use cpwal::io::Storage;
    let entries = disk.list().unwrap();
    let names = entries
        .into_iter()
        .filter_map(|e| e.name.into_string().ok());
    names.filter(|name| name.ends_with(".tmp")).collect()
}

#[test]
fn failed_sync_during_any_creation_leaves_no_temporary() {
    // Goal: whichever sync fails while appends roll over to new segments
    // and a compaction writes its snapshot, the failed step removes the
    // temporary file it was building (the spare after its allocation
    // sync, or after its header sync before the rename; the snapshot).
    // Method: for each of the first 60 syncs after open, a fresh node
    // whose sync number k fails; append and compact until an error; the
    // disk then holds no `.tmp` file.
    for k in 1..=60 {
        let disk = SimDisk::new();
        let mut node =
            DurableControlPlane::create_with_storage(disk.clone(), voter("CN=a"), options())
                .unwrap();
        disk.fail_sync(disk.counters().syncs + k);
        let mut failed = false;
        for n in 0..200 {
            let result = if n % 50 == 49 {
                node.compact(10).map(drop)
            } else {
                node.try_append(&admit(n)).map(drop)
            };
            if result.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "sync {k} was never reached");
        assert_eq!(temporaries(&disk), Vec::<String>::new(), "sync {k}");
    }
}

#[test]
fn failed_allocation_of_a_new_node_leaves_no_temporary() {
    // Goal: a new node whose hard state (or first segment) cannot be
    // allocated fails with NoSpace and leaves no temporary. Method: space
    // budgets from 0 up to what a node needs, one open each.
    for budget in (0..=8192).step_by(512) {
        let disk = SimDisk::new();
        disk.set_space_budget(Some(budget));
        let opened =
            DurableControlPlane::create_with_storage(disk.clone(), voter("CN=a"), options());
        match opened {
            Ok(_) => continue,
            Err(cpwal::Error::NoSpace { .. }) => {}
            Err(other) => panic!("budget {budget}: expected NoSpace, got {other:?}"),
        }
        assert_eq!(temporaries(&disk), Vec::<String>::new(), "budget {budget}");
    }
}

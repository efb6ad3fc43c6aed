//! A long log whose catalog depends on the order of every entry, for tests
//! of open's rebuild: ownership epochs rise and owners change, every 7th
//! transition is stale (fenced), members are admitted and removed, leaders
//! are recorded.

use cpwal::{
    ClusterVoterIdentity, ControlPlaneEntry, ControlPlaneTerm, MembershipChange,
    OwnershipTransition,
};

fn voter(subject: &str) -> ClusterVoterIdentity {
    ClusterVoterIdentity::from_certificate_subject(subject).unwrap()
}

/// Entry `n`: mostly ownership transitions over 700 ranges and three
/// owners (every 7th at an old epoch, so it is fenced), a membership
/// change every 50th, a leader record every 300th.
pub fn long_log_entry(n: u64) -> ControlPlaneEntry {
    let node = |i: u64| voter(&format!("CN=node-{}", i % 3));
    if n % 50 == 3 {
        let member = voter(&format!("CN=member-{}", (n / 50) % 9));
        return ControlPlaneEntry::MembershipChange(if (n / 450).is_multiple_of(2) {
            MembershipChange::Admit(member)
        } else {
            MembershipChange::Remove(member)
        });
    }
    if n % 300 == 7 {
        return ControlPlaneEntry::LeaderConfiguration {
            term: ControlPlaneTerm(n),
            leader: node(n),
        };
    }
    let epoch = if n.is_multiple_of(7) { 1 } else { n + 1 };
    ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
        range: format!("range-{:04}", (n * 13) % 700),
        new_owner: node(n / 700 + n % 5),
        ownership_epoch: epoch,
    })
}

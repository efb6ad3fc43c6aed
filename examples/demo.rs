//! Creates a node in a data directory (or opens the one it holds), votes,
//! appends, reopens, and prints what it recovered. `cargo run --example demo [DIR]` (a temporary directory if none).

use cpwal::{
    ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry, ControlPlaneIndex,
    DurableControlPlane, MembershipChange, Options, OwnershipTransition,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temporary.path().to_path_buf(), Into::into);
    let me = ClusterVoterIdentity::from_certificate_subject("CN=node-a")?;
    let peer = ClusterVoterIdentity::from_certificate_subject("CN=node-b")?;

    // Opening never creates a node: a directory without one is `NoNode`,
    // and only then is one created, by choice.
    let mut node = match DurableControlPlane::open(&dir, me.clone(), Options::default()) {
        Err(cpwal::Error::NoNode { .. }) => {
            DurableControlPlane::create(&dir, me.clone(), Options::default())?
        }
        opened => opened?,
    };
    let term = node.start_election()?;
    println!("elected leader of term {} in {}", term.0, dir.display());
    node.append(ControlPlaneEntry::LeaderConfiguration {
        term,
        leader: me.clone(),
    })?;
    node.append(ControlPlaneEntry::MembershipChange(
        MembershipChange::Admit(peer.clone()),
    ))?;
    node.append(ControlPlaneEntry::OwnershipTransition(
        OwnershipTransition {
            range: "users:[0,1000)".into(),
            new_owner: peer,
            ownership_epoch: 1,
        },
    ))?;
    drop(node);

    let node = DurableControlPlane::open(&dir, me, Options::default())?;
    println!(
        "recovered: term {}, vote {:?}, leader {:?}, commit {:?}",
        node.current_term().0,
        node.durable_vote().voted_for.map(|v| v.to_string()),
        node.leader().map(|l| l.to_string()),
        node.commit_index().map(|i| i.0)
    );
    let end = node.last_index().map_or(0, |i| i.0 + 1);
    for entry in node.read_range(ControlPlaneIndex(0), ControlPlaneIndex(end))? {
        println!(
            "  [{}] term {}: {:?}",
            entry.index.0, entry.term.0, entry.entry
        );
    }
    Ok(())
}

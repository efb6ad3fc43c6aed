//! A cluster supervisor that keeps its control plane in cpwal, as an
//! adopter writes it: it creates its node on first start and opens it
//! afterwards (choosing explicitly), records the cluster's membership, its
//! leader and shard-ownership transitions, checks what applying each did
//! (a fenced transfer is reported, not taken for a success), restarts and
//! reads its catalog back, then serves many threads through the
//! group-commit handle: some written against the seed's trait, two racing
//! to move a range and each told by its own call whether it won.
//!
//! `cargo run --example supervisor [DIR]` (a temporary directory if none);
//! CI runs it.

use std::path::Path;

use cpwal::{
    ApplyOutcome, ClusterVoterIdentity, ControlPlaneConsensus, ControlPlaneEntry,
    ControlPlaneIndex, DurableControlPlane, Error, MembershipChange, Options, OwnershipTransition,
    SharedControlPlane,
};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temporary.path().join("supervisor"), Into::into);
    let me = ClusterVoterIdentity::from_certificate_subject("CN=supervisor-1")?;

    let mut node = start(&dir, &me)?;
    let term = node.current_term();
    record(&mut node, leader_configuration(term, &me))?;
    for worker in ["CN=worker-1", "CN=worker-2"] {
        let worker = ClusterVoterIdentity::from_certificate_subject(worker)?;
        record(&mut node, admit(worker))?;
    }
    // Range "users" moves to worker-1 at epoch 1, then to worker-2 at
    // epoch 2; a late retry of the first move (epoch 1) must be fenced.
    record(&mut node, transfer("users", "CN=worker-1", 1)?)?;
    record(&mut node, transfer("users", "CN=worker-2", 2)?)?;
    let late_retry = record(&mut node, transfer("users", "CN=worker-1", 1)?)?;
    assert!(late_retry.is_refusal(), "a stale epoch must be fenced");
    let before_restart = node.catalog().clone();
    drop(node);

    // A restart: the same directory, opened (never re-created).
    let node = start(&dir, &me)?;
    assert_eq!(node.catalog(), &before_restart, "the catalog survives");
    let owner = node
        .catalog()
        .owner_of("users")
        .ok_or("users has no owner")?;
    println!(
        "after restart: term {}, {} members, users owned by {} at epoch {}, {} fenced",
        node.current_term().0,
        node.catalog().members().len(),
        owner.owner,
        owner.epoch,
        node.catalog().refused_count()
    );

    serve_threads(node)
}

/// Opens this supervisor's node, or creates it on first start. Only a
/// directory that holds no node at all is a first start; every other
/// refusal (a node of another identity or role, corruption, a lock held by
/// another process) stops the supervisor.
fn start(dir: &Path, me: &ClusterVoterIdentity) -> Result<DurableControlPlane, Failure> {
    match DurableControlPlane::open(dir, me.clone(), Options::default()) {
        Ok(node) => {
            println!("opened the node in {}", dir.display());
            Ok(node)
        }
        Err(Error::NoNode { .. }) => {
            println!("first start: creating the node in {}", dir.display());
            Ok(DurableControlPlane::create(
                dir,
                me.clone(),
                Options::default(),
            )?)
        }
        Err(other) => Err(other.into()),
    }
}

/// Appends `entry` and reacts to what applying it did: committed is not
/// the same as taken effect.
fn record(
    node: &mut DurableControlPlane,
    entry: ControlPlaneEntry,
) -> Result<ApplyOutcome, Failure> {
    let appended = node.try_append(&entry)?;
    match &appended.outcome {
        ApplyOutcome::OwnershipFenced { current_epoch } => println!(
            "index {}: transfer FENCED, the range is already at epoch {current_epoch}; not applied",
            appended.index.0
        ),
        ApplyOutcome::LeaderTermNotNewer { latest_term } => println!(
            "index {}: leader record refused, term {} is already recorded",
            appended.index.0, latest_term.0
        ),
        outcome => println!("index {}: {outcome:?}", appended.index.0),
    }
    Ok(appended.outcome)
}

/// Several threads admit members at once through clones of the shared
/// handle, with code that knows only the seed's trait; their appends share
/// syncs.
fn serve_threads(node: DurableControlPlane) -> Result<(), Failure> {
    let members_before = node.catalog().members().len();
    let shared = SharedControlPlane::new(node);
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let mut mine = shared.clone();
            std::thread::spawn(move || admit_through_the_trait(&mut mine, n))
        })
        .collect();
    for thread in threads {
        let index = thread.join().map_err(|_| "a thread panicked")??;
        println!("a thread's admit is committed at index {}", index.0);
    }
    let members = shared.with_catalog(|c| c.members().len());
    assert_eq!(members, members_before + 4);
    race_two_movers(&shared)?;
    println!(
        "{members} members; commit index {:?}",
        shared.commit_index().map(|i| i.0)
    );
    Ok(())
}

/// Two threads move range "orders" at the same epoch through the shared
/// handle: the index order decides which move wins, and each thread learns
/// from its own call whether it won (the other is fenced).
fn race_two_movers(shared: &SharedControlPlane) -> Result<(), Failure> {
    let movers: Vec<_> = ["CN=worker-1", "CN=worker-2"]
        .into_iter()
        .map(|owner| {
            let (shared, entry) = (shared.clone(), transfer("orders", owner, 1));
            std::thread::spawn(move || -> Result<_, Failure> {
                Ok((owner, shared.try_append(&entry?)?))
            })
        })
        .collect();
    let mut fenced = 0;
    for mover in movers {
        let (owner, appended) = mover.join().map_err(|_| "a thread panicked")??;
        let won = !appended.outcome.is_refusal();
        fenced += usize::from(!won);
        println!(
            "index {}: moving orders to {owner} {}",
            appended.index.0,
            if won { "won" } else { "was fenced" }
        );
    }
    assert_eq!(fenced, 1, "one of two moves at the same epoch is fenced");
    Ok(())
}

/// The supervisor's code against the seed's trait: it forwards to the
/// leader it is told of, and never to itself.
fn admit_through_the_trait(
    consensus: &mut impl ControlPlaneConsensus,
    n: u32,
) -> Result<ControlPlaneIndex, Failure> {
    let member = ClusterVoterIdentity::from_certificate_subject(&format!("CN=agent-{n}"))?;
    consensus
        .append(admit(member))
        .map_err(|refused| refused.into())
}

fn admit(member: ClusterVoterIdentity) -> ControlPlaneEntry {
    ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member))
}

fn leader_configuration(
    term: cpwal::ControlPlaneTerm,
    leader: &ClusterVoterIdentity,
) -> ControlPlaneEntry {
    ControlPlaneEntry::LeaderConfiguration {
        term,
        leader: leader.clone(),
    }
}

fn transfer(range: &str, owner: &str, epoch: u64) -> Result<ControlPlaneEntry, Failure> {
    Ok(ControlPlaneEntry::OwnershipTransition(
        OwnershipTransition {
            range: range.to_owned(),
            new_owner: ClusterVoterIdentity::from_certificate_subject(owner)?,
            ownership_epoch: epoch,
        },
    ))
}

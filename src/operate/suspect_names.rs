//! Names a directory holds that cpwal would refuse today: identities and
//! range names with an invisible or bidirectional-control character
//! (U+200B, U+202E, …), which make two different names print alike.
//!
//! cpwal refuses such characters in every new name, but a directory
//! written before that rule may hold them, and cpwal still serves those
//! names (refusing them would make a node unable to open its own log).
//! `cpwal verify` and `cpwal inspect` warn about each one, so an operator
//! learns that `CN=a\u{200B}b` is not `CN=ab` before trusting a message
//! that shows them alike.

use crate::catalog::ControlPlaneCatalog;
use crate::consensus::{ControlPlaneEntry, MembershipChange};
use crate::text::{first_forbidden_character, ForbiddenCharacter};

/// What a suspect name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A member's identity (admitted, removed, or in the catalog).
    Member,
    /// A range's name.
    Range,
    /// The identity a range's ownership names.
    Owner,
    /// The identity a leader record names.
    Leader,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Member => "member",
            Self::Range => "range name",
            Self::Owner => "owner",
            Self::Leader => "leader",
        })
    }
}

/// A stored name holding an invisible character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspectName {
    /// What the name names.
    pub kind: NameKind,
    /// The name as stored.
    pub name: String,
    /// The byte offset of its first invisible character.
    pub offset: usize,
    /// That character.
    pub character: char,
}

impl std::fmt::Display for SuspectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let named = format!("{} \"{}\"", self.kind, self.name.escape_default());
        let invisible = ForbiddenCharacter::Invisible {
            offset: self.offset,
            character: self.character,
        };
        invisible.describe(&named, f)
    }
}

/// The suspect names `entry` holds, in the order it holds them.
pub fn suspect_names_in_entry(entry: &ControlPlaneEntry) -> Vec<SuspectName> {
    let (first, second) = match entry {
        ControlPlaneEntry::MembershipChange(
            MembershipChange::Admit(member) | MembershipChange::Remove(member),
        ) => ((NameKind::Member, member.as_str()), None),
        ControlPlaneEntry::OwnershipTransition(transition) => (
            (NameKind::Range, transition.range.as_str()),
            Some((NameKind::Owner, transition.new_owner.as_str())),
        ),
        ControlPlaneEntry::LeaderConfiguration { leader, .. } => {
            ((NameKind::Leader, leader.as_str()), None)
        }
    };
    std::iter::once(first)
        .chain(second)
        .filter_map(suspect)
        .collect()
}

/// The suspect names of `catalog`: members, ranges and their owners, then
/// the leader history, each name once per place it appears.
pub fn suspect_names_in_catalog(catalog: &ControlPlaneCatalog) -> Vec<SuspectName> {
    let members = catalog
        .members()
        .iter()
        .map(|m| (NameKind::Member, m.as_str()));
    let ranges = catalog.ranges().flat_map(|(range, ownership)| {
        [
            (NameKind::Range, range),
            (NameKind::Owner, ownership.owner.as_str()),
        ]
    });
    let leaders = catalog
        .leader_history()
        .iter()
        .map(|(_, leader)| (NameKind::Leader, leader.as_str()));
    members
        .chain(ranges)
        .chain(leaders)
        .filter_map(suspect)
        .collect()
}

/// `name` as a suspect, if it holds an invisible character (a stored name
/// holds no control character: decoding refuses those).
fn suspect((kind, name): (NameKind, &str)) -> Option<SuspectName> {
    match first_forbidden_character(name)? {
        ForbiddenCharacter::Invisible { offset, character } => Some(SuspectName {
            kind,
            name: name.to_owned(),
            offset,
            character,
        }),
        ForbiddenCharacter::Control { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm, OwnershipTransition};
    use crate::identity::ClusterVoterIdentity;

    /// An identity with an invisible character, as an older cpwal stored
    /// it (today's constructor refuses it).
    fn legacy_identity(subject: &str) -> ClusterVoterIdentity {
        ClusterVoterIdentity::from_validated(subject)
    }

    #[test]
    fn every_name_of_an_entry_and_of_a_catalog_is_checked() {
        // Goal: each place a name is stored is checked, and a clean name
        // is never reported. Method: entries of every kind with one
        // invisible character in one name each; a catalog built from them.
        let clean = ClusterVoterIdentity::from_certificate_subject("CN=clean").unwrap();
        let hidden = legacy_identity("CN=a\u{200B}b");
        let entries = [
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(hidden.clone())),
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: "shard\u{202E}7".to_owned(),
                new_owner: clean.clone(),
                ownership_epoch: 1,
            }),
            ControlPlaneEntry::OwnershipTransition(OwnershipTransition {
                range: "users".to_owned(),
                new_owner: hidden.clone(),
                ownership_epoch: 1,
            }),
            ControlPlaneEntry::LeaderConfiguration {
                term: ControlPlaneTerm(1),
                leader: hidden.clone(),
            },
            ControlPlaneEntry::MembershipChange(MembershipChange::Admit(clean)),
        ];
        let found: Vec<_> = entries
            .iter()
            .map(|e| {
                suspect_names_in_entry(e)
                    .into_iter()
                    .map(|s| (s.kind, s.offset))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            found,
            [
                vec![(NameKind::Member, 4)],
                vec![(NameKind::Range, 5)],
                vec![(NameKind::Owner, 4)],
                vec![(NameKind::Leader, 4)],
                vec![],
            ]
        );
        let mut catalog = ControlPlaneCatalog::new();
        for (index, entry) in entries.iter().enumerate() {
            catalog
                .apply(ControlPlaneIndex(index as u64), entry)
                .unwrap();
        }
        let kinds: Vec<_> = suspect_names_in_catalog(&catalog)
            .into_iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                NameKind::Member,
                NameKind::Range,
                NameKind::Owner,
                NameKind::Leader
            ]
        );
        let line = suspect_names_in_entry(&entries[1])[0].to_string();
        assert_eq!(
            line,
            "range name \"shard\\u{202e}7\" holds the invisible character U+202E at byte 5"
        );
    }
}

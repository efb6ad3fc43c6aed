//! The names `verify` and `inspect` warn about while they read a
//! directory: stored identities and range names with an invisible or
//! bidirectional-control character (see `cpwal::operate::SuspectName`).

use cpwal::operate::{suspect_names_in_catalog, suspect_names_in_entry, SuspectName};
use cpwal::{ControlPlaneCatalog, ControlPlaneEntry, ControlPlaneIndex};
use serde_json::{json, Value};

/// How many suspect names are listed; past that, only counted (a log of
/// millions of such entries must not print millions of lines).
const LISTED: usize = 20;

/// The suspect names found so far: where each is (an entry's index, or the
/// snapshot's catalog), the first [`LISTED`] of them, and how many in all.
#[derive(Default)]
pub struct SuspectNames {
    listed: Vec<(Option<ControlPlaneIndex>, SuspectName)>,
    total: u64,
}

impl SuspectNames {
    /// Notes the suspect names of the snapshot's catalog.
    pub fn note_snapshot(&mut self, catalog: &ControlPlaneCatalog) {
        self.note(None, suspect_names_in_catalog(catalog));
    }

    /// Notes the suspect names of the entry at `index`.
    pub fn note_entry(&mut self, index: ControlPlaneIndex, entry: &ControlPlaneEntry) {
        self.note(Some(index), suspect_names_in_entry(entry));
    }

    fn note(&mut self, place: Option<ControlPlaneIndex>, found: Vec<SuspectName>) {
        self.total += found.len() as u64;
        let room = LISTED.saturating_sub(self.listed.len());
        self.listed
            .extend(found.into_iter().take(room).map(|name| (place, name)));
    }

    /// One warning line per listed name, then how many more were found.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .listed
            .iter()
            .map(|(place, name)| {
                format!(
                    "warning: {}: {name}; it prints like a name without it. cpwal refuses such characters in new names; this one predates that rule",
                    place_text(*place)
                )
            })
            .collect();
        let unlisted = self.total - self.listed.len() as u64;
        if unlisted > 0 {
            lines.push(format!(
                "warning: {unlisted} more stored names hold invisible characters (the first {LISTED} are listed)"
            ));
        }
        lines
    }

    /// `{"total": n, "listed": [{index, kind, name, byte_offset, character}]}`.
    pub fn json(&self) -> Value {
        let listed: Vec<Value> = self
            .listed
            .iter()
            .map(|(place, name)| {
                json!({
                    "index": place.map(|i| i.0),
                    "kind": name.kind.to_string(),
                    "name": name.name,
                    "byte_offset": name.offset,
                    "character": format!("U+{:04X}", u32::from(name.character)),
                })
            })
            .collect();
        json!({ "total": self.total, "listed": listed })
    }
}

fn place_text(place: Option<ControlPlaneIndex>) -> String {
    place.map_or_else(
        || "the snapshot's catalog".to_owned(),
        |i| format!("entry {i}"),
    )
}

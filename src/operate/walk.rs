//! The longest valid prefix of a log that recovery refuses: every segment
//! in chain order, every record checked as recovery checks it, stopping at
//! the first thing that fails instead of refusing the whole log. What lies
//! beyond the stop is measured (indexes it claims, bytes it holds) so an
//! operator can be told what a salvage would lose.

use std::path::PathBuf;

use crate::codec::decode_entry;
use crate::consensus::{ControlPlaneIndex, ControlPlaneTerm};
use crate::engine::LogEntry;
use crate::error::{CorruptionKind, Error, Result, SegmentChainDetail};
use crate::format::{
    parse_segment_file_name, segment_file_name, SegmentHeader, OLDEST_SEGMENT_FORMAT_VERSION,
    SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, SEGMENT_HEADER_CRC_OFFSET, SEGMENT_MAGIC,
};
use crate::io::{Access, Storage, StorageFile};
use crate::log::record::{for_each_valid_record, written_end};
use crate::log::segment::{scan_records, Liveness, Refusal, ScanEnd, Segment};
use crate::log::SegmentedLog;

/// Where the intact prefix of a log ends, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStop {
    /// The segment file.
    pub path: PathBuf,
    /// The offset in it of the first byte not in the prefix.
    pub offset: u64,
    /// The first index not in the prefix.
    pub index: ControlPlaneIndex,
    /// Why the prefix ends there.
    pub reason: StopReason,
}

/// Why the intact prefix of a log ends before its files do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A record fails its checks. `tear_shaped`: some sector of it is still
    /// zero, the shape an interrupted write leaves (whether that makes it a
    /// harmless torn tail is recovery's judgement, reported apart).
    Record {
        /// How it fails.
        kind: CorruptionKind,
        /// Whether it has the shape of a torn write.
        tear_shaped: bool,
    },
    /// A record was written after a truncation the hard state does not
    /// record: the hard state is older than the log.
    UnknownTruncation {
        /// The record's truncation epoch.
        record_epoch: u64,
        /// The hard state's.
        hard_state_epoch: u64,
    },
    /// The segment's header cannot be read or checked.
    SegmentHeader(CorruptionKind),
    /// The segment was written by another format version.
    SegmentVersion {
        /// The version in its header.
        found: u32,
    },
    /// The segment does not follow the one before it.
    Chain(SegmentChainDetail),
}

/// The records of a log that can be trusted: the segments of its intact
/// prefix, each with the offsets of its intact records.
///
/// Invariant: `segments` chain (each starts where the one before ends);
/// every offset listed holds a record that passed its checksum, its index,
/// liveness and decoding when the log was walked.
#[derive(Debug)]
pub(crate) struct IntactLog<F> {
    pub segments: Vec<Segment<F>>,
    /// The first index the log keeps (the hard state's log start).
    pub start_index: u64,
    /// One past the last intact record; below `start_index` when the
    /// damage lies in records the log no longer keeps.
    pub end_index: u64,
    /// The highest `commit_end` any intact record carries.
    pub commit_stamp_end: u64,
}

impl<F: StorageFile> IntactLog<F> {
    /// The library's own view of a log that recovery accepted.
    pub(crate) fn of<S: Storage<File = F>>(log: &SegmentedLog<S>) -> Self {
        let segments = log
            .segments()
            .iter()
            .map(|s| Segment {
                file: s.file.unlatched(),
                name: s.name.clone(),
                path: s.path.clone(),
                header: s.header,
                offsets: s.offsets.clone(),
                end_offset: s.end_offset,
            })
            .collect();
        Self {
            segments,
            start_index: log.start_index(),
            end_index: log.end_index(),
            commit_stamp_end: log.recovered_commit_end(),
        }
    }

    /// The readable indexes: from the log start to the end of the intact
    /// records (empty when the damage lies below the start).
    pub(crate) fn readable(&self) -> std::ops::Range<u64> {
        self.start_index..self.end_index.max(self.start_index)
    }

    /// The term and payload bytes of the entry at `index`, checksum
    /// re-verified.
    pub(crate) fn read_payload(&self, index: u64) -> Result<(u64, Vec<u8>)> {
        let readable = self.readable();
        if index < readable.start {
            let first_index = readable.start;
            return Err(Error::Compacted { index, first_index });
        }
        if index >= readable.end {
            let end_index = readable.end;
            return Err(Error::NotFound { index, end_index });
        }
        let position = self.segments.partition_point(|s| s.first_index() <= index) - 1;
        let (term, payload) = self.segments[position].read_entry(index)?;
        Ok((term, payload.into_owned()))
    }

    /// The entry at `index`, decoded.
    pub(crate) fn read(&self, index: u64) -> Result<LogEntry> {
        let (term, payload) = self.read_payload(index)?;
        let entry = decode_entry(&payload).map_err(|e| {
            let kind = CorruptionKind::UndecodableEntry(e);
            Error::corruption(self.path_of(index), 0, Some(index), kind)
        })?;
        Ok(LogEntry {
            index: ControlPlaneIndex(index),
            term: ControlPlaneTerm(term),
            entry,
        })
    }

    fn path_of(&self, index: u64) -> PathBuf {
        let position = self.segments.partition_point(|s| s.first_index() <= index);
        self.segments[position.saturating_sub(1)].path.clone()
    }
}

/// What walking a log found.
#[derive(Debug)]
pub(crate) struct Walk<F> {
    /// The intact prefix.
    pub log: IntactLog<F>,
    /// Where it ends on something other than a clean end.
    pub stop: Option<LogStop>,
    /// One past the highest index that any record beyond the stop holds or
    /// vouches durable (0 when nothing beyond is readable).
    pub evidence_end: u64,
    /// The highest `commit_end` any valid record beyond the stop carries.
    pub commit_evidence_end: u64,
    /// Written (non-zero) bytes of log files beyond the intact prefix.
    pub bytes_beyond: u64,
    /// Segment files wholly beyond the stop.
    pub segments_beyond: Vec<String>,
}

/// Walks the segments of `generations` (ascending) in `storage` from
/// `log_start` (`None`: the hard state is lost, start at the first
/// segment), keeping records that `liveness` accepts, until the first
/// failure. Segments wholly below `log_start` are a compaction's leftovers
/// and skipped, as recovery skips them.
pub(crate) fn walk<S: Storage>(
    storage: &S,
    generations: &[u64],
    log_start: Option<u64>,
    liveness: Liveness,
) -> Result<Walk<S::File>> {
    let mut opened = Vec::with_capacity(generations.len());
    for &generation in generations {
        let name = segment_file_name(generation);
        let segment = match Segment::open(storage, &name, Access::ReadOnly) {
            Ok(segment) => Ok(segment),
            Err(Error::Corruption(c)) => match (&c.kind, open_cut_segment(storage, &name)) {
                (CorruptionKind::TruncatedFile { .. }, Some(cut)) => Ok(cut),
                _ => Err(StopReason::SegmentHeader(c.kind)),
            },
            Err(Error::UnsupportedVersion { found, .. }) => {
                Err(StopReason::SegmentVersion { found })
            }
            Err(other) => return Err(other),
        };
        opened.push((name, segment));
    }
    if let Some(start) = log_start {
        while opened.len() > 1 && matches!(&opened[1].1, Ok(s) if s.first_index() <= start) {
            drop(opened.remove(0)); // A compaction's leftover, as recovery skips it.
        }
    }
    let start = log_start.unwrap_or_else(|| match opened.first() {
        Some((_, Ok(first))) => first.first_index(),
        _ => 0,
    });
    let mut walk = Walk {
        log: IntactLog {
            segments: Vec::new(),
            start_index: start,
            end_index: start,
            commit_stamp_end: 0,
        },
        stop: None,
        evidence_end: 0,
        commit_evidence_end: 0,
        bytes_beyond: 0,
        segments_beyond: Vec::new(),
    };
    for (name, opened) in opened {
        if walk.stop.is_some() {
            walk.measure_beyond(storage, &name, opened.ok(), liveness)?;
            continue;
        }
        let expected = walk
            .log
            .segments
            .last()
            .map(|s| (s.end_index(), s.generation()));
        match check_segment(storage, &name, opened, expected, start) {
            SegmentCheck::Follows(segment) => walk.take_segment(segment, liveness)?,
            SegmentCheck::Stops { stop, segment } => {
                walk.stop = Some(stop);
                walk.measure_beyond(storage, &name, segment, liveness)?;
            }
        }
    }
    Ok(walk)
}

/// Whether a segment continues the intact prefix.
enum SegmentCheck<F> {
    /// It does.
    Follows(Segment<F>),
    /// The prefix stops at it; `segment` when its header was readable.
    Stops {
        stop: LogStop,
        segment: Option<Segment<F>>,
    },
}

/// Whether the segment `name` opened and follows the intact prefix (whose
/// last segment ends at `before`'s index and has `before`'s generation, or
/// which is empty and starts at `start`), or where and why the prefix
/// stops.
fn check_segment<S: Storage>(
    storage: &S,
    name: &str,
    opened: std::result::Result<Segment<S::File>, StopReason>,
    before: Option<(u64, u64)>,
    start: u64,
) -> SegmentCheck<S::File> {
    let index = before.map_or(start, |(end, _)| end);
    let stop = |reason| LogStop {
        path: storage.path_of(name),
        offset: 0,
        index: ControlPlaneIndex(index),
        reason,
    };
    let segment = match opened {
        Ok(segment) => segment,
        Err(reason) => {
            let stop = stop(reason);
            return SegmentCheck::Stops {
                stop,
                segment: None,
            };
        }
    };
    let detail = match before {
        None if segment.first_index() > start => Some(SegmentChainDetail::MissingHead {
            expected: start,
            found: segment.first_index(),
        }),
        Some((_, generation)) if segment.header.previous_generation != generation => {
            Some(SegmentChainDetail::GenerationMismatch {
                expected: generation,
                found: segment.header.previous_generation,
            })
        }
        Some((end, _)) if segment.first_index() != end => Some(SegmentChainDetail::IndexGap {
            expected: end,
            found: segment.first_index(),
        }),
        _ => None,
    };
    let Some(detail) = detail else {
        return SegmentCheck::Follows(segment);
    };
    // The header field that breaks the chain, as recovery reports it.
    let offset = match detail {
        SegmentChainDetail::GenerationMismatch { .. } => {
            std::mem::offset_of!(SegmentHeader, previous_generation)
        }
        _ => std::mem::offset_of!(SegmentHeader, first_index),
    };
    let stop = LogStop {
        offset: offset as u64,
        ..stop(StopReason::Chain(detail))
    };
    SegmentCheck::Stops {
        stop,
        segment: Some(segment),
    }
}

impl<F: StorageFile> Walk<F> {
    /// Adds `segment` (which follows the prefix) and its intact records;
    /// records where they stop, if not at a clean end.
    fn take_segment(&mut self, mut segment: Segment<F>, liveness: Liveness) -> Result<()> {
        let file = std::sync::Arc::clone(&segment.file);
        let bytes = segment_bytes(&*file, &segment)?;
        let mut records = walk_records(&bytes, &segment.header, liveness);
        let actual_bytes = bytes.len() as u64;
        if actual_bytes < segment.header.size_bytes {
            // Cut short: whatever the walk found at the cut, the cut is why.
            let kind = CorruptionKind::TruncatedFile {
                expected_bytes: segment.header.size_bytes,
                actual_bytes,
            };
            let tear_shaped = false;
            records.stop = Some(StopReason::Record { kind, tear_shaped });
        }
        segment.offsets = records.offsets;
        segment.end_offset = records.end_offset;
        self.log.commit_stamp_end = self.log.commit_stamp_end.max(records.commit_stamp_end);
        self.log.end_index = segment.end_index();
        if let Some(reason) = records.stop {
            if let StopReason::Record {
                tear_shaped: false, ..
            } = reason
            {
                // Written whole, then damaged: the entry existed.
                self.evidence_end = self.evidence_end.max(segment.end_index() + 1);
            }
            self.stop = Some(LogStop {
                path: segment.path.clone(),
                offset: records.end_offset,
                index: ControlPlaneIndex(segment.end_index()),
                reason,
            });
            self.measure_bytes(&bytes, segment.generation(), records.end_offset, liveness);
        }
        drop(bytes);
        self.log.segments.push(segment);
        Ok(())
    }

    /// Counts what the segment `name` (beyond the stop) holds: its written
    /// bytes, and the indexes of its valid records.
    fn measure_beyond<S: Storage<File = F>>(
        &mut self,
        storage: &S,
        name: &str,
        segment: Option<Segment<F>>,
        liveness: Liveness,
    ) -> Result<()> {
        self.segments_beyond.push(name.to_owned());
        match segment {
            Some(segment) => {
                let bytes = segment_bytes(&*segment.file, &segment)?;
                let generation = segment.generation();
                self.measure_bytes(&bytes, generation, SEGMENT_HEADER_BYTES, liveness);
                Ok(())
            }
            None => {
                // An unreadable header: count the written span of the file.
                let path = storage.path_of(name);
                let file = storage
                    .open(name, false)
                    .map_err(|e| Error::io("open segment", &path, e))?;
                let length = file
                    .len()
                    .map_err(|e| Error::io("stat segment", &path, e))?;
                let bytes = file
                    .read_at(0, length as usize)
                    .map_err(|e| Error::io("read segment", &path, e))?;
                self.bytes_beyond += written_end(&bytes, 0);
                Ok(())
            }
        }
    }

    /// Adds the written bytes of `bytes[from..]`, the indexes its valid
    /// live records hold or vouch for, and the commit points they carry.
    fn measure_bytes(&mut self, bytes: &[u8], generation: u64, from: u64, liveness: Liveness) {
        self.bytes_beyond += written_end(bytes, from) - from;
        for_each_valid_record(bytes, generation, from, |header| {
            if liveness.is_live(header) {
                let claimed = header.durable_end.max(header.index + 1);
                self.evidence_end = self.evidence_end.max(claimed);
                self.commit_evidence_end = self.commit_evidence_end.max(header.commit_end);
            }
        });
    }
}

/// The bytes of `segment`'s file: all of them, which is the header's size
/// unless the file was cut short.
fn segment_bytes<'a, F: StorageFile>(
    file: &'a F,
    segment: &Segment<F>,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let io = |e| Error::io("read segment", &segment.path, e);
    let length = file.len().map_err(io)?;
    file.read_at(0, length.min(segment.header.size_bytes) as usize)
        .map_err(io)
}

/// A segment whose file was cut short after its header, opened with the
/// header checked as [`Segment::open`] checks it (magic, version,
/// checksum, size, name), so the records still present can be walked.
fn open_cut_segment<S: Storage>(storage: &S, name: &str) -> Option<Segment<S::File>> {
    let file = storage.open(name, false).ok()?;
    let length = file.len().ok()?;
    let bytes = file.read_at(0, SEGMENT_HEADER_BYTES as usize).ok()?;
    let header: SegmentHeader = bytemuck::pod_read_unaligned(&bytes);
    let checksum = crc32fast::hash(&bytes[..SEGMENT_HEADER_CRC_OFFSET]);
    let valid = header.magic == SEGMENT_MAGIC
        && (OLDEST_SEGMENT_FORMAT_VERSION..=SEGMENT_FORMAT_VERSION)
            .contains(&header.format_version)
        && header.crc == checksum
        && u64::from(header.header_bytes) == SEGMENT_HEADER_BYTES
        && parse_segment_file_name(name) == Some(header.generation)
        && length < header.size_bytes
        && header.size_bytes <= u64::from(u32::MAX);
    drop(bytes);
    valid.then(|| Segment {
        file: std::sync::Arc::new(file),
        name: name.to_owned(),
        path: storage.path_of(name),
        header,
        offsets: Vec::new(),
        end_offset: SEGMENT_HEADER_BYTES,
    })
}

/// The intact records of one segment.
struct RecordWalk {
    offsets: Vec<u32>,
    end_offset: u64,
    commit_stamp_end: u64,
    /// Why the records stop before a clean end; `None` at zeros or at a
    /// record a truncation removed (its remains are not damage).
    stop: Option<StopReason>,
}

/// Walks the records of a segment (`bytes`, the whole file or what is left
/// of it) with recovery's own scan ([`scan_records`]), stopping at the
/// first failure instead of refusing.
fn walk_records(bytes: &[u8], header: &SegmentHeader, liveness: Liveness) -> RecordWalk {
    let decode = |payload: &[u8]| decode_entry(payload).map(drop);
    let scan = scan_records(bytes, header, liveness, decode);
    let kind = scan.end.corruption_kind();
    let stop = match &scan.end {
        ScanEnd::Clean | ScanEnd::Removed => None,
        ScanEnd::Refused {
            refusal:
                Refusal::UnknownTruncation {
                    record_epoch,
                    hard_state_epoch,
                },
            ..
        } => Some(StopReason::UnknownTruncation {
            record_epoch: *record_epoch,
            hard_state_epoch: *hard_state_epoch,
        }),
        ScanEnd::Refused { .. } => Some(StopReason::Record {
            kind,
            tear_shaped: false,
        }),
        ScanEnd::Damaged { tear_shaped, .. } => Some(StopReason::Record {
            kind,
            tear_shaped: *tear_shaped,
        }),
    };
    RecordWalk {
        offsets: scan.offsets,
        end_offset: scan.end_offset,
        commit_stamp_end: scan.commit_end,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encoded_entry;
    use crate::consensus::{ControlPlaneEntry, MembershipChange};
    use crate::format::{RecordHeader, RECORD_HEADER_BYTES};
    use crate::identity::ClusterVoterIdentity;
    use crate::log::record::encode_record;
    use crate::log::record::RecordPlace;
    use crate::log::segment::new_header;

    const SIZE_BYTES: u64 = 4096;

    /// A segment of generation 1 from index 0 holding a record per
    /// `(index, log_epoch)`, each at the offset its order gives it.
    fn segment(records: &[(u64, u64)]) -> (Vec<u8>, SegmentHeader) {
        let header = new_header(1, 0, 0, SIZE_BYTES);
        let mut bytes = bytemuck::bytes_of(&header).to_vec();
        for &(index, log_epoch) in records {
            let member = ClusterVoterIdentity::from_certificate_subject(&format!("CN=m{index}"));
            let entry =
                ControlPlaneEntry::MembershipChange(MembershipChange::Admit(member.unwrap()));
            let place = RecordPlace {
                generation: 1,
                offset: bytes.len() as u64,
            };
            let record = RecordHeader {
                magic: 0,
                payload_bytes: 0,
                log_epoch,
                index,
                term: 1,
                durable_end: index,
                commit_end: index + 1,
            };
            encode_record(&mut bytes, place, record, &encoded_entry(&entry));
        }
        bytes.resize(SIZE_BYTES as usize, 0);
        (bytes, header)
    }

    const EPOCH_0: Liveness = Liveness {
        log_epoch: 0,
        truncated_from: u64::MAX,
    };

    #[test]
    fn walk_records_stops_where_recovery_would_refuse() {
        // Goal: the walk keeps exactly the records recovery's scan keeps
        // and stops (instead of refusing) at the first it would refuse: an
        // index out of sequence, a record of a truncation the hard state
        // does not know. Method: segments built record by record.
        let (bytes, header) = segment(&[(0, 0), (1, 0), (2, 0)]);
        let walked = walk_records(&bytes, &header, EPOCH_0);
        assert_eq!((walked.offsets.len(), walked.stop), (3, None));
        assert_eq!(walked.commit_stamp_end, 3);

        let (bytes, header) = segment(&[(0, 0), (1, 0), (5, 0)]);
        let walked = walk_records(&bytes, &header, EPOCH_0);
        let kind = CorruptionKind::IndexOutOfSequence {
            expected: 2,
            found: 5,
        };
        let tear_shaped = false;
        assert_eq!(walked.stop, Some(StopReason::Record { kind, tear_shaped }));
        assert_eq!(walked.offsets.len(), 2);

        let (bytes, header) = segment(&[(0, 0), (1, 3)]);
        let walked = walk_records(&bytes, &header, EPOCH_0);
        let stop = StopReason::UnknownTruncation {
            record_epoch: 3,
            hard_state_epoch: 0,
        };
        assert_eq!((walked.offsets.len(), walked.stop), (1, Some(stop)));
    }

    #[test]
    fn walk_records_ends_cleanly_at_an_interrupted_truncations_remains() {
        // Goal: records a truncation removed (older epoch, at or past the
        // truncation) end the log without being damage, as in recovery.
        let (bytes, header) = segment(&[(0, 1), (1, 1), (2, 0)]);
        let after_truncation = Liveness {
            log_epoch: 1,
            truncated_from: 2,
        };
        let walked = walk_records(&bytes, &header, after_truncation);
        assert_eq!((walked.offsets.len(), walked.stop), (2, None));
    }

    #[test]
    fn walk_records_reports_a_zeroed_record_before_data_as_tear_shaped() {
        // Goal: a record whose first bytes are zero while data follows is
        // a stop (not a clean end), with the shape of a torn write; a bit
        // flip in a written record is a stop without that shape.
        let (mut bytes, header) = segment(&[(0, 0), (1, 0), (2, 0)]);
        let second = walk_records(&bytes, &header, EPOCH_0).offsets[1] as usize;
        let mut flipped = bytes.clone();
        flipped[second + RECORD_HEADER_BYTES as usize] ^= 1;
        let walked = walk_records(&flipped, &header, EPOCH_0);
        let kind = CorruptionKind::ChecksumMismatch;
        let tear_shaped = false;
        assert_eq!(walked.stop, Some(StopReason::Record { kind, tear_shaped }));
        bytes[second..second + 8].fill(0);
        let walked = walk_records(&bytes, &header, EPOCH_0);
        let tear_shaped = true;
        let kind = CorruptionKind::ChecksumMismatch;
        assert_eq!(walked.stop, Some(StopReason::Record { kind, tear_shaped }));
        assert_eq!(walked.offsets.len(), 1);
    }
}

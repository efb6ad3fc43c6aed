//! One segment file: a preallocated run of records behind a checksummed
//! header. This module knows how to create a segment atomically, validate its
//! header, scan its records, and write at its end; which segments exist and
//! how they chain is [`crate::log`]'s business.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    parse_segment_file_name, record_bytes, segment_file_name, RecordHeader, SegmentHeader,
    OLDEST_SEGMENT_FORMAT_VERSION, RECORD_ALIGNMENT_BYTES, RECORD_HEADER_BYTES, SECTOR_BYTES,
    SEGMENT_FIRST_INDEX_OFFSET, SEGMENT_FORMAT_VERSION, SEGMENT_GENERATION_OFFSET,
    SEGMENT_HEADER_BYTES, SEGMENT_HEADER_CRC_OFFSET, SEGMENT_MAGIC, SEGMENT_SIZE_OFFSET,
};
use crate::io::whole_file;
use crate::io::{Access, Storage, StorageFile};
use crate::limits::MAX_END;

use super::record::{
    has_flipped_length, has_tear_shape, parse_record, read_record, survey_records, written_end,
    RecordFault, RecordPlace, RecordRead,
};

/// Which records count as part of the log, given the hard state's record of
/// the last suffix truncation. Records written before that truncation at or
/// after its index are removed, even while their bytes are still on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The hard state's `log_epoch`.
    pub log_epoch: u64,
    /// The hard state's `truncated_from`.
    pub truncated_from: u64,
}

impl Liveness {
    /// Whether a record with this header is part of the log.
    pub fn is_live(&self, header: &RecordHeader) -> bool {
        header.log_epoch == self.log_epoch || header.index < self.truncated_from
    }
}

/// A run of consecutive entries sharing one term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermRun {
    /// The first index of the run.
    pub first_index: u64,
    /// The term of every entry in the run.
    pub term: u64,
}

/// An open segment.
///
/// Invariants: `offsets[i]` is the offset of the record holding index
/// `first_index + i`; offsets strictly increase; every byte from `end_offset`
/// to the end of the file is zero once recovery is done (a dropped tail is
/// zeroed before any write).
#[derive(Debug)]
pub struct Segment<F> {
    /// The file, shared with a syncing thread when group commit is in use.
    pub file: Arc<F>,
    /// The file name.
    pub name: String,
    /// The path, for errors.
    pub path: PathBuf,
    /// The validated header.
    pub header: SegmentHeader,
    /// Offset of each record, by index - `first_index`.
    pub offsets: Vec<u32>,
    /// Where the next record goes.
    pub end_offset: u64,
}

/// What a scan of one segment found.
#[derive(Debug)]
pub struct SegmentScan {
    /// The offset of each live record, by index - `first_index`.
    pub offsets: Vec<u32>,
    /// Where the live records end.
    pub end_offset: u64,
    /// Term runs of the live records, in order.
    pub term_runs: Vec<TermRun>,
    /// The highest `commit_end` any live record carries.
    pub commit_end: u64,
    /// The `durable_end` the last live record carries: every index below
    /// it was durable before that record was written (0 without records).
    pub last_durable_end: u64,
    /// The last run of live records sharing one commit point (for a sole
    /// voter: its last batch), if there are records.
    pub last_batch: Option<LastBatch>,
    /// How the live records end.
    pub end: ScanEnd,
    /// One past the last non-zero byte from the end of the live records.
    pub written_end: u64,
    /// One past the highest index of any valid record after the end of the
    /// live records (0 when there is none): what dropping them drops.
    pub dropped_index_end: u64,
}

/// The last run of consecutive live records that carry the same
/// `commit_end`. A sole voter stamps every record of a batch with the
/// batch's end, so this is its last batch; it is complete only if
/// `commit_end` does not exceed the segment's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastBatch {
    /// The commit point its records carry.
    pub commit_end: u64,
    /// The index of its first record.
    pub first_index: u64,
    /// The offset of its first record.
    pub first_offset: u64,
    /// The highest commit point of the records before it.
    pub commit_end_before: u64,
}

/// The live records a scan accepted so far.
#[derive(Debug, Default)]
struct LiveRecords {
    offsets: Vec<u32>,
    term_runs: Vec<TermRun>,
    commit_end: u64,
    last_durable_end: u64,
    last_batch: Option<LastBatch>,
}

impl LiveRecords {
    fn push(&mut self, header: &RecordHeader, offset: u64) {
        if self.term_runs.last().map(|r| r.term) != Some(header.term) {
            self.term_runs.push(TermRun {
                first_index: header.index,
                term: header.term,
            });
        }
        if self.last_batch.map(|b| b.commit_end) != Some(header.commit_end) {
            self.last_batch = Some(LastBatch {
                commit_end: header.commit_end,
                first_index: header.index,
                first_offset: offset,
                commit_end_before: self.commit_end,
            });
        }
        self.commit_end = self.commit_end.max(header.commit_end);
        self.last_durable_end = header.durable_end;
        self.offsets.push(offset as u32);
    }
}

/// Why a valid record ends a scan as damage: no crash leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Written after a truncation the hard state does not know of (its
    /// `log_epoch` is above the hard state's): the hard state is older than
    /// the log.
    UnknownTruncation {
        /// The record's epoch.
        record_epoch: u64,
        /// The hard state's epoch.
        hard_state_epoch: u64,
    },
    /// Its index is not the one its position requires.
    OutOfSequence {
        /// The index its position requires.
        expected: u64,
        /// The index it holds.
        found: u64,
    },
    /// Its payload passed the checksum but does not decode.
    Undecodable(crate::codec::DecodeError),
}

/// How the sequence of live records in a segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Zeros follow the last record: a clean end.
    Clean,
    /// A valid record that a truncation removed follows: the remains of an
    /// interrupted truncation.
    Removed,
    /// A valid record that recovery must refuse.
    Refused {
        /// Where it starts.
        offset: u64,
        /// Why.
        refusal: Refusal,
    },
    /// A record fails its check.
    Damaged {
        /// Where the failing record starts.
        offset: u64,
        /// Why it fails.
        fault: Option<RecordFault>,
        /// Whether the failure has the shape of a torn write.
        tear_shaped: bool,
        /// The highest `durable_end` of any live record after it.
        vouched_end: u64,
    },
}

impl ScanEnd {
    /// Where the scan stopped on something that is not a clean end: the
    /// failing or refused record (after the padding before a sync, it may
    /// start past the end of the live records); `None` for a clean end or
    /// a truncation's remains.
    pub fn damage_offset(&self) -> Option<u64> {
        match self {
            ScanEnd::Damaged { offset, .. } | ScanEnd::Refused { offset, .. } => Some(*offset),
            ScanEnd::Clean | ScanEnd::Removed => None,
        }
    }

    /// The corruption this end is when it is not explained by a crash.
    pub fn corruption_kind(&self) -> CorruptionKind {
        match self {
            ScanEnd::Damaged {
                fault: Some(RecordFault::BadMagic),
                ..
            } => CorruptionKind::BadMagic,
            ScanEnd::Damaged {
                fault: Some(RecordFault::ImpossibleLength(length)),
                ..
            } => CorruptionKind::ImpossibleLength { length: *length },
            ScanEnd::Refused {
                refusal: Refusal::OutOfSequence { expected, found },
                ..
            } => CorruptionKind::IndexOutOfSequence {
                expected: *expected,
                found: *found,
            },
            ScanEnd::Refused {
                refusal: Refusal::Undecodable(error),
                ..
            } => CorruptionKind::UndecodableEntry(error.clone()),
            // The stale file is the hard state (see `SegmentedLog`'s
            // recovery, which reports it there): the record is sound.
            ScanEnd::Refused {
                refusal:
                    Refusal::UnknownTruncation {
                        record_epoch,
                        hard_state_epoch,
                    },
                ..
            } => CorruptionKind::EpochAheadOfHardState {
                record_epoch: *record_epoch,
                hard_state_epoch: *hard_state_epoch,
            },
            _ => CorruptionKind::ChecksumMismatch,
        }
    }
}

impl<F: StorageFile> Segment<F> {
    /// The term and payload of the entry at `index`, which this segment
    /// holds, its checksum re-verified (a corrupt or misplaced record is
    /// [`CorruptionKind::ChecksumMismatch`] at its offset).
    pub fn read_entry(&self, index: u64) -> Result<(u64, Cow<'_, [u8]>)> {
        let offset = u64::from(self.offsets[(index - self.first_index()) as usize]);
        let io = |e| Error::io("read segment", &self.path, e);
        let head = self
            .file
            .read_at(offset, RECORD_HEADER_BYTES as usize)
            .map_err(io)?;
        let header: RecordHeader = bytemuck::pod_read_unaligned(&head);
        let length =
            record_bytes(u64::from(header.payload_bytes)).min(self.header.size_bytes - offset);
        let bytes = self.file.read_at(offset, length as usize).map_err(io)?;
        let place = RecordPlace {
            generation: self.generation(),
            offset,
        };
        let (term, payload_range) = match parse_record(&bytes, place) {
            RecordRead::Valid { header, payload } if header.index == index => {
                let start = RECORD_HEADER_BYTES as usize;
                (header.term, start..start + payload.len())
            }
            _ => {
                let kind = CorruptionKind::ChecksumMismatch;
                return Err(Error::corruption(&self.path, offset, Some(index), kind));
            }
        };
        let payload = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[payload_range]),
            Cow::Owned(mut b) => {
                b.truncate(payload_range.end);
                b.drain(..payload_range.start);
                Cow::Owned(b)
            }
        };
        Ok((term, payload))
    }

    /// The first index this segment holds (or would hold).
    pub fn first_index(&self) -> u64 {
        self.header.first_index
    }

    /// One past the last index this segment holds.
    pub fn end_index(&self) -> u64 {
        self.header.first_index + self.offsets.len() as u64
    }

    /// The segment's generation.
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// Creates the segment of `generation` atomically: a temporary file is
    /// allocated in full, then installed (see [`Segment::install`]). A crash
    /// leaves either no segment or a whole one (plus perhaps a temporary file
    /// that recovery removes).
    pub fn create<S: Storage<File = F>>(
        storage: &S,
        generation: u64,
        previous_generation: u64,
        first_index: u64,
        size_bytes: u64,
    ) -> Result<Self> {
        let name = segment_file_name(generation);
        let header = new_header(generation, previous_generation, first_index, size_bytes);
        let path = storage.path_of(&whole_file::temporary_name(&name));
        let file = whole_file::write_whole(storage, &name, |file| {
            file.allocate(size_bytes)
                .map_err(|e| Error::io("allocate segment", &path, e))?;
            write_header(file, &header, &path)
        })?;
        Ok(Self::fresh(storage, file, name, header))
    }

    /// Makes the allocated temporary file `temporary` the segment `header`
    /// describes: the header written, then installed whole
    /// ([`whole_file::install`]: synced, renamed to its final name, the
    /// directory synced). Before the rename the file is a temporary one,
    /// which recovery removes; after it, a whole segment with a valid
    /// header. If a step before the rename fails, the temporary is removed.
    pub fn install<S: Storage<File = F>>(
        storage: &S,
        file: F,
        temporary: &str,
        header: SegmentHeader,
    ) -> Result<Self> {
        let name = segment_file_name(header.generation);
        let path = storage.path_of(temporary);
        whole_file::install(storage, &file, temporary, &name, |file| {
            write_header(file, &header, &path)
        })?;
        Ok(Self::fresh(storage, file, name, header))
    }

    /// A segment just created as `name`, holding no record yet.
    fn fresh<S: Storage<File = F>>(
        storage: &S,
        file: F,
        name: String,
        header: SegmentHeader,
    ) -> Self {
        Self {
            file: Arc::new(file),
            path: storage.path_of(&name),
            name,
            header,
            offsets: Vec::new(),
            end_offset: SEGMENT_HEADER_BYTES,
        }
    }

    /// Opens the segment file `name` and validates its header against its
    /// name and length. Records are not read until [`Segment::scan`].
    pub fn open<S: Storage<File = F>>(storage: &S, name: &str, access: Access) -> Result<Self> {
        let path = storage.path_of(name);
        let file = storage
            .open(name, access.is_writable())
            .map_err(|e| Error::io("open segment", &path, e))?;
        let length = file
            .len()
            .map_err(|e| Error::io("stat segment", &path, e))?;
        let header = validate_header(&file, &path, length)?;
        if parse_segment_file_name(name) != Some(header.generation) {
            return Err(Error::corruption(
                &path,
                0,
                None,
                CorruptionKind::SegmentChainBroken {
                    detail: crate::error::SegmentChainDetail::NameMismatch,
                },
            ));
        }
        Ok(Self {
            file: Arc::new(file),
            name: name.to_owned(),
            path,
            header,
            offsets: Vec::new(),
            end_offset: SEGMENT_HEADER_BYTES,
        })
    }

    /// Reads the segment and walks its records as recovery reads them
    /// ([`scan_records`]) and reports how they end, changing nothing. How
    /// to judge that end is the caller's decision, since it depends on the
    /// segment's place in the log: recovery scans several segments at once,
    /// then judges them in order, each one taking its scan's live records
    /// ([`Self::adopt_scan`]).
    pub fn scan(
        &self,
        liveness: Liveness,
        decode: impl Fn(&[u8]) -> std::result::Result<(), crate::codec::DecodeError>,
    ) -> Result<SegmentScan> {
        let bytes = self
            .file
            .read_at(0, self.header.size_bytes as usize)
            .map_err(|e| Error::io("read segment", &self.path, e))?;
        Ok(scan_records(&bytes, &self.header, liveness, decode))
    }

    /// Takes the live records `scan` (this segment's) found as its own,
    /// their offsets without the slack the scan grew them with (the log
    /// index is most of an open log's heap: 4 bytes per entry, not 8).
    pub fn adopt_scan(&mut self, scan: &mut SegmentScan) {
        self.offsets = std::mem::take(&mut scan.offsets);
        self.offsets.shrink_to_fit();
        self.end_offset = scan.end_offset;
    }

    /// Forgets the records from `batch` on (an incomplete batch recovery
    /// drops); returns the offset where they started.
    pub fn drop_batch(&mut self, batch: LastBatch) -> u64 {
        let keep = (batch.first_index - self.first_index()) as usize;
        self.offsets.truncate(keep);
        self.end_offset = batch.first_offset;
        batch.first_offset
    }

    /// Zeroes `[from, to)` and syncs, so removed or torn bytes can neither
    /// be read back nor vouch for anything after a crash.
    pub fn zero_range(&self, from: u64, to: u64) -> Result<()> {
        if to <= from {
            return Ok(());
        }
        self.write_zeros(from, to)?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync segment", &self.path, e))
    }

    /// Writes zeros over `[from, to)`, a megabyte at a time, without syncing.
    pub fn write_zeros(&self, from: u64, to: u64) -> Result<()> {
        const CHUNK_BYTES: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK_BYTES.min(to.saturating_sub(from)) as usize];
        let mut at = from;
        while at < to {
            let length = (to - at).min(CHUNK_BYTES);
            self.file
                .write_at(at, &zeros[..length as usize])
                .map_err(|e| Error::io("zero segment tail", &self.path, e))?;
            at += length;
        }
        Ok(())
    }
}

/// Walks the records of a segment — `bytes` is its file, possibly cut
/// short, `header` its validated header — as recovery reads them: in
/// sequence from the first, across the padding before each sync's sector,
/// keeping the live ones, until the first that is not a live record in
/// sequence. Never refuses: where recovery must refuse (a record out of
/// sequence, undecodable, or of a truncation the hard state does not know)
/// the scan ends there with [`ScanEnd::Refused`], so that an operator's
/// best-effort walk and recovery read a log by the same rules.
pub fn scan_records(
    bytes: &[u8],
    header: &SegmentHeader,
    liveness: Liveness,
    decode: impl Fn(&[u8]) -> std::result::Result<(), crate::codec::DecodeError>,
) -> SegmentScan {
    let mut live = LiveRecords::default();
    let mut offset = SEGMENT_HEADER_BYTES;
    let end = loop {
        let index = header.first_index + live.offsets.len() as u64;
        let place = RecordPlace {
            generation: header.generation,
            offset,
        };
        match read_record(bytes, place) {
            RecordRead::Valid {
                header: record,
                payload,
            } => {
                if !liveness.is_live(&record) && record.log_epoch <= liveness.log_epoch {
                    break ScanEnd::Removed;
                }
                if let Some(refusal) = refusal(&record, index, liveness, || decode(payload)) {
                    break ScanEnd::Refused { offset, refusal };
                }
                live.push(&record, offset);
                offset += crate::format::record_bytes(u64::from(record.payload_bytes));
            }
            RecordRead::Unwritten => match next_sync_start(bytes, header, offset) {
                // The next sync's records: the loop checks them as any
                // (epoch, liveness, index).
                Some((next, RecordRead::Valid { .. })) => offset = next,
                _ if written_end(bytes, offset) == offset => break ScanEnd::Clean,
                // The next sync's first record is missing or damaged: judged
                // as itself, where it starts (its first sector is whole or
                // old, so a tear cannot explain a bad header there). Not
                // where a truncation cut the log: the bytes after the cut
                // were written by an older sync, and what an interrupted
                // truncation left there is judged from the cut, as in a
                // version 1 segment.
                Some((next, read)) if index != liveness.truncated_from => {
                    let next_place = RecordPlace {
                        offset: next,
                        ..place
                    };
                    break judge_failure(bytes, next_place, read, liveness);
                }
                _ => break judge_failure(bytes, place, RecordRead::Unwritten, liveness),
            },
            read => break judge_failure(bytes, place, read, liveness),
        }
    };
    let dropped_index_end = match end {
        ScanEnd::Clean => 0,
        _ => survey_records(bytes, header.generation, offset, |_| true).index_end,
    };
    let written_end = match end {
        // A clean end was found by checking that nothing follows.
        ScanEnd::Clean => offset,
        _ => written_end(bytes, offset),
    };
    SegmentScan {
        offsets: live.offsets,
        end_offset: offset,
        term_runs: live.term_runs,
        commit_end: live.commit_end,
        last_durable_end: live.last_durable_end,
        last_batch: live.last_batch,
        end,
        written_end,
        dropped_index_end,
    }
}

/// Why recovery must refuse the live-or-newer valid `record` found where
/// `index` belongs, if it must (`decode` checks its payload last).
fn refusal(
    record: &RecordHeader,
    index: u64,
    liveness: Liveness,
    decode: impl FnOnce() -> std::result::Result<(), crate::codec::DecodeError>,
) -> Option<Refusal> {
    if record.log_epoch > liveness.log_epoch {
        return Some(Refusal::UnknownTruncation {
            record_epoch: record.log_epoch,
            hard_state_epoch: liveness.log_epoch,
        });
    }
    if record.index != index {
        return Some(Refusal::OutOfSequence {
            expected: index,
            found: record.index,
        });
    }
    decode().err().map(Refusal::Undecodable)
}

/// Where the next sync's records would start, and what is there, when the
/// bytes at `offset` are zero: since format version 2 each sync's write
/// starts at a sector boundary, so zeros up to the next boundary are
/// padding. `None` in a version 1 segment (records follow each other
/// without gaps, and a sector boundary may fall inside one), at a boundary
/// already, or when the bytes up to it are not all zero.
fn next_sync_start<'a>(
    bytes: &'a [u8],
    header: &SegmentHeader,
    offset: u64,
) -> Option<(u64, RecordRead<'a>)> {
    if header.format_version < 2 {
        return None;
    }
    let next = offset.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    let padding = bytes.get(offset as usize..next as usize)?;
    // An OR over the padding (under a sector) vectorizes; `any` does not.
    if next == offset || padding.iter().fold(0u8, |any, &b| any | b) != 0 {
        return None;
    }
    let place = RecordPlace {
        generation: header.generation,
        offset: next,
    };
    Some((next, read_record(bytes, place)))
}

fn judge_failure(
    bytes: &[u8],
    place: RecordPlace,
    read: RecordRead<'_>,
    liveness: Liveness,
) -> ScanEnd {
    let fault = match read {
        RecordRead::Invalid(fault) => Some(fault),
        _ => None,
    };
    let extent = match fault {
        Some(RecordFault::ChecksumMismatch { record_bytes }) => record_bytes,
        _ => crate::format::RECORD_HEADER_BYTES,
    };
    let tear_shaped = match fault {
        // Bad magic in non-zero bytes: a torn write leaves old (zero) or new
        // (valid) sectors, never garbage, so this cannot be a tear.
        Some(RecordFault::BadMagic) | Some(RecordFault::ImpossibleLength(_)) => false,
        // A flipped length bit can make a whole record's claimed extent reach
        // zeros past its end: damage, not a tear.
        Some(RecordFault::ChecksumMismatch { .. }) => {
            has_tear_shape(bytes, place.offset, extent) && !has_flipped_length(bytes, place)
        }
        None => true,
    };
    // Any record after the failed one starts at least one alignment unit on.
    let after = place.offset + RECORD_ALIGNMENT_BYTES;
    let vouched_end =
        survey_records(bytes, place.generation, after, |h| liveness.is_live(h)).vouched_end;
    ScanEnd::Damaged {
        offset: place.offset,
        fault,
        tear_shaped,
        vouched_end,
    }
}

/// Writes `header` at the start of the segment file `file` (at `path`).
fn write_header<F: StorageFile>(
    file: &F,
    header: &SegmentHeader,
    path: &std::path::Path,
) -> Result<()> {
    file.write_at(0, bytemuck::bytes_of(header))
        .map_err(|e| Error::io("write segment header", path, e))
}

/// The header of a new segment.
pub(crate) fn new_header(
    generation: u64,
    previous_generation: u64,
    first_index: u64,
    size_bytes: u64,
) -> SegmentHeader {
    let mut header = SegmentHeader {
        magic: SEGMENT_MAGIC,
        format_version: SEGMENT_FORMAT_VERSION,
        header_bytes: SEGMENT_HEADER_BYTES as u32,
        generation,
        previous_generation,
        first_index,
        size_bytes,
        reserved: [0; 12],
        crc: 0,
    };
    header.crc = crc32fast::hash(&bytemuck::bytes_of(&header)[..SEGMENT_HEADER_CRC_OFFSET]);
    header
}

fn validate_header<F: StorageFile>(
    file: &F,
    path: &std::path::Path,
    length: u64,
) -> Result<SegmentHeader> {
    let corrupt = |offset, kind| Error::corruption(path, offset, None, kind);
    if length < SEGMENT_HEADER_BYTES {
        return Err(corrupt(
            0,
            CorruptionKind::TruncatedFile {
                expected_bytes: SEGMENT_HEADER_BYTES,
                actual_bytes: length,
            },
        ));
    }
    let bytes = file
        .read_at(0, SEGMENT_HEADER_BYTES as usize)
        .map_err(|e| Error::io("read segment header", path, e))?;
    let header: SegmentHeader = bytemuck::pod_read_unaligned(&bytes);
    crate::format::check_file_header(
        path,
        header.magic == SEGMENT_MAGIC,
        header.format_version,
        OLDEST_SEGMENT_FORMAT_VERSION..=SEGMENT_FORMAT_VERSION,
        header.crc == crc32fast::hash(&bytes[..SEGMENT_HEADER_CRC_OFFSET])
            && u64::from(header.header_bytes) == SEGMENT_HEADER_BYTES,
    )?;
    for (field, value, offset) in [
        (
            "first_index",
            header.first_index,
            SEGMENT_FIRST_INDEX_OFFSET,
        ),
        ("generation", header.generation, SEGMENT_GENERATION_OFFSET),
    ] {
        if value > MAX_END {
            return Err(corrupt(offset, CorruptionKind::OutOfRange { field, value }));
        }
    }
    if header.size_bytes > u32::MAX as u64 || header.size_bytes < SEGMENT_HEADER_BYTES {
        return Err(corrupt(
            SEGMENT_SIZE_OFFSET,
            CorruptionKind::ImpossibleLength {
                length: header.size_bytes,
            },
        ));
    }
    if length != header.size_bytes {
        return Err(corrupt(
            length.min(header.size_bytes),
            CorruptionKind::TruncatedFile {
                expected_bytes: header.size_bytes,
                actual_bytes: length,
            },
        ));
    }
    Ok(header)
}

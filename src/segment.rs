//! One segment file: a preallocated run of records behind a checksummed
//! header. This module knows how to create a segment atomically, validate its
//! header, scan its records, and write at its end; which segments exist and
//! how they chain is [`crate::log`]'s business.

use std::mem::offset_of;
use std::path::PathBuf;
use std::sync::Arc;

use crate::directory::RemoveOnFailure;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    parse_segment_file_name, segment_file_name, RecordHeader, SegmentHeader, FORMAT_VERSION,
    SEGMENT_HEADER_BYTES, SEGMENT_HEADER_CRC_OFFSET, SEGMENT_MAGIC, TEMPORARY_FILE_SUFFIX,
};
use crate::io::{Storage, StorageFile};
use crate::limits::MAX_END;
use crate::record::{
    has_tear_shape, highest_vouched_end, read_record, written_end, RecordFault, RecordPlace,
    RecordRead,
};
use crate::sync_gate::SyncGate;

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
    /// Term runs of the live records, in order.
    pub term_runs: Vec<TermRun>,
    /// The highest `commit_end` any live record carries.
    pub commit_end: u64,
    /// How the live records end.
    pub end: ScanEnd,
    /// One past the last non-zero byte from the end of the live records.
    pub written_end: u64,
}

/// How the sequence of live records in a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Zeros follow the last record: a clean end.
    Clean,
    /// A valid record that a truncation removed follows: the remains of an
    /// interrupted truncation.
    Removed,
    /// A record fails its check.
    Damaged {
        /// Why it fails.
        fault: Option<RecordFault>,
        /// Whether the failure has the shape of a torn write.
        tear_shaped: bool,
        /// The highest `durable_end` of any live record after it.
        vouched_end: u64,
    },
}

impl<F: StorageFile> Segment<F> {
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

    /// Bytes left for records.
    pub fn free_bytes(&self) -> u64 {
        self.header.size_bytes - self.end_offset
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
        let temporary = format!("{}{TEMPORARY_FILE_SUFFIX}", segment_file_name(generation));
        let io = |op| {
            let path = storage.path_of(&temporary);
            move |e| Error::io(op, path, e)
        };
        let file = storage.create(&temporary).map_err(io("create segment"))?;
        let cleanup = RemoveOnFailure::new(storage, &temporary);
        file.allocate(size_bytes).map_err(io("allocate segment"))?;
        cleanup.keep(); // `install` guards it from here.
        let header = new_header(generation, previous_generation, first_index, size_bytes);
        Self::install(storage, file, &temporary, header)
    }

    /// Makes the allocated temporary file `temporary` the segment `header`
    /// describes: header written, file synced, renamed to its final name,
    /// directory synced. Before the rename the file is a temporary one, which
    /// recovery removes; after it, a whole segment with a valid header. If a
    /// step before the rename fails, the temporary is removed.
    pub fn install<S: Storage<File = F>>(
        storage: &S,
        file: F,
        temporary: &str,
        header: SegmentHeader,
    ) -> Result<Self> {
        let name = segment_file_name(header.generation);
        let temporary_path = storage.path_of(temporary);
        let io = |op| {
            let path = temporary_path.clone();
            move |e| Error::io(op, path, e)
        };
        let cleanup = RemoveOnFailure::new(storage, temporary);
        file.write_at(0, bytemuck::bytes_of(&header))
            .map_err(io("write segment header"))?;
        file.sync_data().map_err(io("fdatasync segment"))?;
        storage
            .rename(temporary, &name)
            .map_err(io("rename segment"))?;
        cleanup.keep();
        storage
            .sync_directory()
            .map_err(|e| Error::io("fsync directory", storage.path_of(""), e))?;
        Ok(Self {
            file: Arc::new(file),
            path: storage.path_of(&name),
            name,
            header,
            offsets: Vec::new(),
            end_offset: SEGMENT_HEADER_BYTES,
        })
    }

    /// Opens the segment file `name` and validates its header against its
    /// name and length. Records are not read until [`Segment::scan`].
    pub fn open<S: Storage<File = F>>(storage: &S, name: &str, writable: bool) -> Result<Self> {
        let path = storage.path_of(name);
        let file = storage
            .open(name, writable)
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

    /// Reads every record, filling `offsets` and `end_offset` with the live
    /// ones, and reports how they end. A record out of sequence or a payload
    /// that fails to decode is corruption; how to judge a damaged end is the
    /// caller's decision, since it depends on the segment's place in the log.
    pub fn scan(
        &mut self,
        liveness: Liveness,
        decode: impl Fn(&[u8]) -> std::result::Result<(), crate::codec::DecodeError>,
    ) -> Result<SegmentScan> {
        let bytes = self
            .file
            .read_at(0, self.header.size_bytes as usize)
            .map_err(|e| Error::io("read segment", &self.path, e))?;
        let bytes = &bytes[..];
        let generation = self.header.generation;
        let mut offsets = Vec::new();
        let mut term_runs: Vec<TermRun> = Vec::new();
        let mut commit_end = 0;
        let mut offset = SEGMENT_HEADER_BYTES;
        let end = loop {
            let index = self.header.first_index + offsets.len() as u64;
            let place = RecordPlace { generation, offset };
            match read_record(bytes, place) {
                RecordRead::Valid { header, payload } => {
                    let corrupt =
                        |kind| Err(Error::corruption(&self.path, offset, Some(index), kind));
                    if header.log_epoch > liveness.log_epoch {
                        // Written after a truncation the hard state does not
                        // know of: the hard state is older than the log.
                        return corrupt(CorruptionKind::ChecksumMismatch);
                    }
                    if !liveness.is_live(&header) {
                        break ScanEnd::Removed;
                    }
                    if header.index != index {
                        return corrupt(CorruptionKind::IndexOutOfSequence {
                            expected: index,
                            found: header.index,
                        });
                    }
                    if let Err(e) = decode(payload) {
                        return corrupt(CorruptionKind::UndecodableEntry(e));
                    }
                    if term_runs.last().map(|r| r.term) != Some(header.term) {
                        term_runs.push(TermRun {
                            first_index: index,
                            term: header.term,
                        });
                    }
                    commit_end = commit_end.max(header.commit_end);
                    offsets.push(offset as u32);
                    offset += crate::format::record_bytes(u64::from(header.payload_bytes));
                }
                RecordRead::Unwritten if written_end(bytes, offset) == offset => {
                    break ScanEnd::Clean
                }
                read => break judge_failure(bytes, place, read, liveness),
            }
        };
        self.offsets = offsets;
        self.end_offset = offset;
        Ok(SegmentScan {
            term_runs,
            commit_end,
            end,
            // A clean end was found by checking that nothing follows.
            written_end: match end {
                ScanEnd::Clean => offset,
                _ => written_end(bytes, offset),
            },
        })
    }

    /// Zeroes `[from, to)` and syncs through `gate`, so removed or torn bytes
    /// can neither be read back nor vouch for anything after a crash.
    pub fn zero_range(&self, from: u64, to: u64, gate: &SyncGate) -> Result<()> {
        if to <= from {
            return Ok(());
        }
        const CHUNK_BYTES: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK_BYTES.min(to - from) as usize];
        let mut at = from;
        while at < to {
            let length = (to - at).min(CHUNK_BYTES);
            self.file
                .write_at(at, &zeros[..length as usize])
                .map_err(|e| Error::io("zero segment tail", &self.path, e))?;
            at += length;
        }
        gate.sync(&*self.file)
            .map_err(|e| Error::io("fdatasync segment", &self.path, e))
    }
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
        _ => fault.is_none() || has_tear_shape(bytes, place.offset, extent),
    };
    let vouched_end = highest_vouched_end(bytes, place.generation, place.offset + 8, |h| {
        liveness.is_live(h)
    });
    ScanEnd::Damaged {
        fault,
        tear_shaped,
        vouched_end,
    }
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
        format_version: FORMAT_VERSION,
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
        header.crc == crc32fast::hash(&bytes[..SEGMENT_HEADER_CRC_OFFSET])
            && u64::from(header.header_bytes) == SEGMENT_HEADER_BYTES,
    )?;
    for (field, value, offset) in [
        (
            "first_index",
            header.first_index,
            offset_of!(SegmentHeader, first_index),
        ),
        (
            "generation",
            header.generation,
            offset_of!(SegmentHeader, generation),
        ),
    ] {
        if value > MAX_END {
            return Err(corrupt(
                offset as u64,
                CorruptionKind::OutOfRange { field, value },
            ));
        }
    }
    if header.size_bytes > u32::MAX as u64 || header.size_bytes < SEGMENT_HEADER_BYTES {
        return Err(corrupt(
            40,
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

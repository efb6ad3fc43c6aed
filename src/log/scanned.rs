//! The records the recovery scan of this open just walked, handed to the
//! catalog rebuild one segment at a time ([`SegmentedLog::for_each_scanned_segment`]).

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{RecordHeader, RECORD_HEADER_BYTES, RECORD_MAGIC};
use crate::io::{Storage, StorageFile};

use super::record::{read_record, RecordPlace, RecordRead};
use super::SegmentedLog;

/// One segment's entries of the range being rebuilt, over the segment's
/// bytes as read once. Shared by reference with the thread that decodes
/// ahead of the one applying (it is only read).
///
/// Invariant: `offsets[i]` is where the record of index `first + i` starts
/// in `bytes` (as the recovery scan recorded it).
#[derive(Debug)]
pub struct ScannedRecords<'a> {
    bytes: &'a [u8],
    path: &'a Path,
    generation: u64,
    first: u64,
    offsets: &'a [u32],
    /// Whether `bytes` are the very bytes the scan verified (the memory
    /// map), so checksums need not be computed again.
    verified: bool,
}

impl<'a> ScannedRecords<'a> {
    /// The indexes of the entries held.
    pub fn indexes(&self) -> Range<u64> {
        self.first..self.first + self.offsets.len() as u64
    }

    /// The payload of the entry at `index` (one of [`Self::indexes`]). A
    /// record that fails a check is corruption at its file, offset and
    /// index.
    pub fn payload(&self, index: u64) -> Result<&'a [u8]> {
        let place = self.place(index);
        payload_at(self.bytes, place, index, self.verified).ok_or_else(|| {
            let kind = CorruptionKind::ChecksumMismatch;
            Error::corruption(self.path, place.offset, Some(index), kind)
        })
    }

    /// Corruption of the entry at `index` (one of [`Self::indexes`]),
    /// found in its payload: `kind`, at its record's file and offset.
    pub fn corruption(&self, index: u64, kind: CorruptionKind) -> Error {
        Error::corruption(self.path, self.place(index).offset, Some(index), kind)
    }

    fn place(&self, index: u64) -> RecordPlace {
        RecordPlace {
            generation: self.generation,
            offset: u64::from(self.offsets[(index - self.first) as usize]),
        }
    }
}

impl<S: Storage> SegmentedLog<S> {
    /// Calls `visit` with the entries of `[from, to)` segment by segment, in
    /// order (one read per segment instead of a lookup and a read per
    /// entry).
    ///
    /// For the catalog rebuild at open only, before anything is written:
    /// when the segment's bytes come back borrowed (the memory map, the very
    /// bytes the recovery scan of this open just verified), a record's
    /// checksum is not computed a second time; only its magic and index are
    /// checked. Bytes that come back owned (a fresh copy from the file) are
    /// verified as [`SegmentedLog::read`] verifies them, which every read
    /// after open does.
    pub fn for_each_scanned_segment(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(&ScannedRecords<'_>) -> Result<()>,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        self.check_readable(from)?;
        self.check_readable(to - 1)?;
        let first = self.segments.partition_point(|s| s.first_index() <= from) - 1;
        let mut index = from;
        for segment in &self.segments[first..] {
            let stop = to.min(segment.end_index());
            if index >= stop {
                break;
            }
            let bytes = segment
                .file
                .read_at(0, segment.header.size_bytes as usize)
                .map_err(|e| Error::io("read segment", &segment.path, e))?;
            let skip = (index - segment.first_index()) as usize;
            let records = ScannedRecords {
                bytes: &bytes,
                path: &segment.path,
                generation: segment.generation(),
                first: index,
                offsets: &segment.offsets[skip..skip + (stop - index) as usize],
                verified: matches!(bytes, Cow::Borrowed(_)),
            };
            visit(&records)?;
            index = stop;
        }
        Ok(())
    }
}

/// The payload of the record at `place` in `segment` (the whole file's
/// bytes), which must hold `index`. Its checksum is verified unless
/// `already_verified` (see [`SegmentedLog::for_each_scanned_segment`]);
/// `None` when the record fails a check.
fn payload_at(
    segment: &[u8],
    place: RecordPlace,
    index: u64,
    already_verified: bool,
) -> Option<&[u8]> {
    if !already_verified {
        return match read_record(segment, place) {
            RecordRead::Valid { header, payload } if header.index == index => Some(payload),
            _ => None,
        };
    }
    let start = usize::try_from(place.offset).ok()?;
    let payload_start = start + RECORD_HEADER_BYTES as usize;
    let header: RecordHeader = bytemuck::pod_read_unaligned(segment.get(start..payload_start)?);
    let payload = segment.get(payload_start..payload_start + header.payload_bytes as usize)?;
    (header.magic == RECORD_MAGIC && header.index == index).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::*;

    /// A segment's bytes holding one record of `payload` for `index` at
    /// offset 0, placed at generation 1.
    fn one_record(index: u64, payload: &[u8]) -> (Vec<u8>, RecordPlace) {
        let place = RecordPlace {
            generation: 1,
            offset: 0,
        };
        let header = RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: 0,
            index,
            term: 1,
            durable_end: index + 1,
            commit_end: index + 1,
        };
        let mut bytes = Vec::new();
        encode_record(&mut bytes, place, header, payload);
        (bytes, place)
    }

    #[test]
    fn payload_at_verifies_checksum_unless_already_verified() {
        // Goal: the rebuild's record reader recomputes the checksum of bytes
        // it was not handed verified, and always checks the index and the
        // bounds. Method: flip a payload bit of a valid record and read it
        // both ways; ask for the wrong index; cut the bytes short.
        let (mut bytes, place) = one_record(7, b"payload");
        assert_eq!(payload_at(&bytes, place, 7, false), Some(&b"payload"[..]));
        assert_eq!(payload_at(&bytes, place, 7, true), Some(&b"payload"[..]));
        assert_eq!(payload_at(&bytes, place, 8, false), None);
        assert_eq!(payload_at(&bytes, place, 8, true), None);
        let short = &bytes[..RECORD_HEADER_BYTES as usize + 3];
        assert_eq!(payload_at(short, place, 7, true), None);
        assert_eq!(payload_at(short, place, 7, false), None);
        bytes[RECORD_HEADER_BYTES as usize] ^= 1;
        assert_eq!(payload_at(&bytes, place, 7, false), None);
        assert_eq!(payload_at(&bytes, place, 7, true), Some(&b"qayload"[..]));
        bytes[0] ^= 1;
        assert_eq!(payload_at(&bytes, place, 7, true), None);
    }
}

//! Record framing: how one log entry is laid out inside a segment, checked,
//! and — when a check fails — judged as a torn write or as damage.
//! The byte layout is in [`crate::format`].

use std::sync::LazyLock;

use crate::format::{
    align_up, record_bytes, RecordHeader, RecordTrailer, MAX_RECORD_PAYLOAD_BYTES,
    RECORD_ALIGNMENT_BYTES, RECORD_END_MAGIC, RECORD_HEADER_BYTES, RECORD_MAGIC,
    RECORD_TRAILER_BYTES, SECTOR_BYTES,
};

/// Where a record belongs; mixed into its checksum so that a copy of the
/// record anywhere else fails its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPlace {
    /// The generation of the segment holding the record.
    pub generation: u64,
    /// The record's byte offset in that segment.
    pub offset: u64,
}

/// Appends the framed record (header, payload, padding, trailer) to `out`,
/// sealed: `header.magic` and `header.payload_bytes` are filled in here, and
/// the checksum for `place`.
#[cfg(test)]
pub fn encode_record(out: &mut Vec<u8>, place: RecordPlace, header: RecordHeader, payload: &[u8]) {
    let start = out.len();
    frame_record(out, header, payload);
    let durable_end = header.durable_end;
    seal_records(
        &mut out[start..],
        place.generation,
        place.offset,
        durable_end,
    );
}

/// Appends the record (header, payload, padding, trailer) to `out`, not yet
/// sealed: its checksum is zero until [`seal_records`] runs.
/// `header.magic` and `header.payload_bytes` are filled in here.
pub fn frame_record(out: &mut Vec<u8>, mut header: RecordHeader, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_RECORD_PAYLOAD_BYTES);
    header.magic = RECORD_MAGIC;
    header.payload_bytes = payload.len() as u32;
    let start = out.len();
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(payload);
    let padded = start + align_up(RECORD_HEADER_BYTES + payload.len() as u64) as usize;
    out.resize(padded, 0);
    let trailer = RecordTrailer {
        crc: 0,
        end_magic: RECORD_END_MAGIC,
    };
    out.extend_from_slice(bytemuck::bytes_of(&trailer));
    debug_assert_eq!(
        out.len() - start,
        record_bytes(payload.len() as u64) as usize
    );
}

/// Seals every record framed in `records`, which will be written at
/// `offset` of the segment of `generation`: each gets `durable_end` and then
/// its checksum (salted with where it lands).
pub fn seal_records(records: &mut [u8], generation: u64, offset: u64, durable_end: u64) {
    let header_bytes = RECORD_HEADER_BYTES as usize;
    let mut start = 0;
    while start < records.len() {
        let mut header: RecordHeader =
            bytemuck::pod_read_unaligned(&records[start..start + header_bytes]);
        header.durable_end = durable_end;
        records[start..start + header_bytes].copy_from_slice(bytemuck::bytes_of(&header));
        let length = record_bytes(u64::from(header.payload_bytes)) as usize;
        let body_end = start + length - RECORD_TRAILER_BYTES as usize;
        let place = RecordPlace {
            generation,
            offset: offset + start as u64,
        };
        let crc = record_checksum(place, &records[start..body_end]);
        records[body_end..body_end + 4].copy_from_slice(&crc.to_le_bytes());
        start += length;
    }
}

/// The checksum of a record's body (header, payload and padding) at `place`.
pub fn record_checksum(place: RecordPlace, body: &[u8]) -> u32 {
    let mut hasher = record_hasher();
    hasher.update(&salt(place));
    hasher.update(body);
    hasher.finalize()
}

/// A fresh crc32 hasher. `crc32fast::Hasher::new` detects the CPU's
/// features on every call (about 45 instructions, a fifth of a small
/// record's whole checksum, paid per record on append and at open); a
/// clone of one made once does not.
fn record_hasher() -> crc32fast::Hasher {
    static DETECTED: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);
    DETECTED.clone()
}

/// The checksum's salt for `place`: generation, then offset, little-endian.
fn salt(place: RecordPlace) -> [u8; 16] {
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&place.generation.to_le_bytes());
    salt[8..].copy_from_slice(&place.offset.to_le_bytes());
    salt
}

/// What is found at a record position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRead<'a> {
    /// A record that passes every check.
    Valid {
        /// Its header.
        header: RecordHeader,
        /// Its payload.
        payload: &'a [u8],
    },
    /// The first eight bytes are zero: nothing was ever written here (or a
    /// tear kept this sector at its old, zero content).
    Unwritten,
    /// Something was written but it is not a valid record.
    Invalid(RecordFault),
}

/// Why written bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFault {
    /// The header does not start with the record magic.
    BadMagic,
    /// The payload length is zero, above the limit, or runs past the file.
    ImpossibleLength(u64),
    /// The header is plausible but the checksum or end magic does not match.
    ChecksumMismatch {
        /// Bytes the record claims to occupy.
        record_bytes: u64,
    },
}

/// Reads the record at `place.offset` of `segment` (the whole file's bytes).
pub fn read_record(segment: &[u8], place: RecordPlace) -> RecordRead<'_> {
    match segment.get(place.offset as usize..) {
        Some(bytes) => parse_record(bytes, place),
        None => RecordRead::Invalid(RecordFault::ImpossibleLength(0)),
    }
}

/// Parses the record at the start of `bytes`, which were read from `place`
/// and run at least to the record's end (or to the end of the file).
pub fn parse_record(bytes: &[u8], place: RecordPlace) -> RecordRead<'_> {
    let header_end = RECORD_HEADER_BYTES as usize;
    if bytes[..bytes.len().min(8)].iter().all(|&b| b == 0) {
        return RecordRead::Unwritten;
    }
    let Some(header_bytes) = bytes.get(..header_end) else {
        return RecordRead::Invalid(RecordFault::ImpossibleLength(0));
    };
    let header: RecordHeader = bytemuck::pod_read_unaligned(header_bytes);
    if header.magic != RECORD_MAGIC {
        return RecordRead::Invalid(RecordFault::BadMagic);
    }
    let payload_bytes = u64::from(header.payload_bytes);
    let total = record_bytes(payload_bytes);
    let too_long = payload_bytes > MAX_RECORD_PAYLOAD_BYTES as u64;
    if payload_bytes == 0 || too_long || total > bytes.len() as u64 {
        return RecordRead::Invalid(RecordFault::ImpossibleLength(payload_bytes));
    }
    let body_end = (total - RECORD_TRAILER_BYTES) as usize;
    let trailer: RecordTrailer = bytemuck::pod_read_unaligned(&bytes[body_end..total as usize]);
    if trailer.end_magic != RECORD_END_MAGIC
        || trailer.crc != record_checksum(place, &bytes[..body_end])
    {
        return RecordRead::Invalid(RecordFault::ChecksumMismatch {
            record_bytes: total,
        });
    }
    let payload = &bytes[header_end..header_end + payload_bytes as usize];
    RecordRead::Valid { header, payload }
}

/// Whether the failed record at `place` would be valid but for one flipped
/// bit of its `payload_bytes` field. Such a record was written whole and
/// then damaged; but its claimed extent is wrong, and a longer one can
/// reach zero sectors past its true end and pass for a tear. A tear keeps a
/// record's first sector (its header) whole, so in a torn record the length
/// is the written one, and no single-bit change of it makes the record
/// valid. Tries each of the 32 bits (checksum over at most one record each,
/// only for a record that failed at the tail).
pub fn has_flipped_length(segment: &[u8], place: RecordPlace) -> bool {
    let start = place.offset as usize;
    let header_end = start + RECORD_HEADER_BYTES as usize;
    let Some(header_bytes) = segment.get(start..header_end) else {
        return false;
    };
    let mut header: RecordHeader = bytemuck::pod_read_unaligned(header_bytes);
    let stored = header.payload_bytes;
    (0..32).any(|bit| {
        header.payload_bytes = stored ^ (1 << bit);
        let payload_bytes = u64::from(header.payload_bytes);
        if payload_bytes == 0 || payload_bytes > MAX_RECORD_PAYLOAD_BYTES as u64 {
            return false;
        }
        let total = record_bytes(payload_bytes) as usize;
        let Some(record) = segment.get(start..start + total) else {
            return false;
        };
        let body_end = total - RECORD_TRAILER_BYTES as usize;
        let trailer: RecordTrailer = bytemuck::pod_read_unaligned(&record[body_end..]);
        if trailer.end_magic != RECORD_END_MAGIC {
            return false;
        }
        let mut hasher = record_hasher();
        hasher.update(&salt(place));
        hasher.update(bytemuck::bytes_of(&header));
        hasher.update(&record[RECORD_HEADER_BYTES as usize..body_end]);
        hasher.finalize() == trailer.crc
    })
}

/// Whether the failed record at `offset` has the shape of a torn write: some
/// sector-aligned piece of its extent is entirely zero. A record that was
/// written whole never has such a piece (see the format's "Torn tail or
/// corruption"), so a zero piece proves that sector was never written.
///
/// `extent_bytes` is the record's claimed size, or the header size when the
/// header itself is unreadable.
pub fn has_tear_shape(segment: &[u8], offset: u64, extent_bytes: u64) -> bool {
    let end = (offset + extent_bytes).min(segment.len() as u64);
    let mut piece_start = offset;
    while piece_start < end {
        let piece_end = ((piece_start / SECTOR_BYTES) + 1) * SECTOR_BYTES;
        let piece = &segment[piece_start as usize..piece_end.min(end) as usize];
        if piece.iter().all(|&b| b == 0) {
            return true;
        }
        piece_start = piece_end;
    }
    false
}

/// What the valid records found anywhere in `segment[from..]` (at every
/// record-aligned offset where the magic stands) say about the bytes before
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Survey {
    /// The highest `durable_end` among those `is_live` accepts. A live
    /// record written after a failed one, claiming the failed index was
    /// durable, is proof that the failure is damage, not a tear.
    pub vouched_end: u64,
    /// One past the highest index among all of them (0 when there is none):
    /// what a recovery that drops these bytes drops.
    pub index_end: u64,
}

/// Surveys the valid records of `segment[from..]` (see [`Survey`]).
pub fn survey_records(
    segment: &[u8],
    generation: u64,
    from: u64,
    is_live: impl Fn(&RecordHeader) -> bool,
) -> Survey {
    let mut survey = Survey::default();
    for_each_valid_record(segment, generation, from, |header| {
        if is_live(header) {
            survey.vouched_end = survey.vouched_end.max(header.durable_end);
        }
        survey.index_end = survey.index_end.max(header.index.saturating_add(1));
    });
    survey
}

/// Calls `visit` with the header of every valid record found anywhere in
/// `segment[from..]`, at every record-aligned offset where the magic stands
/// (whatever lies between them: damage, a tear, a truncation's remains).
pub fn for_each_valid_record(
    segment: &[u8],
    generation: u64,
    from: u64,
    mut visit: impl FnMut(&RecordHeader),
) {
    let magic = RECORD_MAGIC.to_le_bytes();
    let mut offset = align_up(from);
    while offset + RECORD_HEADER_BYTES <= segment.len() as u64 {
        if segment[offset as usize..offset as usize + 4] == magic {
            let place = RecordPlace { generation, offset };
            if let RecordRead::Valid { header, .. } = read_record(segment, place) {
                visit(&header);
            }
        }
        offset += RECORD_ALIGNMENT_BYTES;
    }
}

/// One past the last non-zero byte of `segment[from..]`, rounded up to the
/// record alignment; `from` when everything from there on is zero.
pub fn written_end(segment: &[u8], from: u64) -> u64 {
    let tail = &segment[from as usize..];
    match last_nonzero(tail) {
        Some(last) => align_up(from + last as u64 + 1).min(segment.len() as u64),
        None => from,
    }
}

/// The position of the last non-zero byte of `bytes`. The tail of a segment
/// is mostly zeros, so whole 64-byte blocks are skipped first (an OR over a
/// block vectorizes; a byte-by-byte search from the end does not), which
/// makes checking a fresh 16 MiB segment several times faster at open.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    const BLOCK_BYTES: usize = 64;
    let mut end = bytes.len();
    while end >= BLOCK_BYTES {
        let block = &bytes[end - BLOCK_BYTES..end];
        if block.iter().fold(0u8, |any, &b| any | b) != 0 {
            break;
        }
        end -= BLOCK_BYTES;
    }
    bytes[..end].iter().rposition(|&b| b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, longest_zero_run, MAX_ZERO_RUN_BYTES};
    use proptest::prelude::*;

    fn header(index: u64) -> RecordHeader {
        RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: 0,
            index,
            term: 0,
            durable_end: 0,
            commit_end: 0,
        }
    }

    const PLACE: RecordPlace = RecordPlace {
        generation: 1,
        offset: 64,
    };

    fn segment_with(payload: &[u8]) -> Vec<u8> {
        let mut segment = vec![0; 64];
        encode_record(&mut segment, PLACE, header(0), payload);
        segment.resize(4096, 0);
        segment
    }

    #[test]
    fn read_record_accepts_what_encode_record_wrote() {
        let segment = segment_with(b"hello");
        match read_record(&segment, PLACE) {
            RecordRead::Valid { header, payload } => {
                assert_eq!(payload, b"hello");
                assert_eq!(header.payload_bytes, 5);
            }
            other => panic!("expected a valid record, got {other:?}"),
        }
    }

    #[test]
    fn read_record_at_another_place_fails_its_checksum() {
        let segment = segment_with(b"hello");
        let elsewhere = RecordPlace {
            generation: 2,
            ..PLACE
        };
        assert!(matches!(
            read_record(&segment, elsewhere),
            RecordRead::Invalid(RecordFault::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn read_record_of_zeros_is_unwritten() {
        assert_eq!(read_record(&[0; 4096], PLACE), RecordRead::Unwritten);
    }

    #[test]
    fn read_record_refuses_impossible_lengths() {
        let mut segment = segment_with(b"hello");
        segment[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_record(&segment, PLACE),
            RecordRead::Invalid(RecordFault::ImpossibleLength(_))
        ));
    }

    #[test]
    fn has_tear_shape_sees_an_unwritten_sector_but_not_a_bit_flip() {
        // A record spanning three sectors: 64..~1200.
        let payload = vec![b'x'; 1100];
        let segment = segment_with(&payload);
        let extent = record_bytes(payload.len() as u64);
        assert!(!has_tear_shape(&segment, 64, extent));

        let mut flipped = segment.clone();
        flipped[700] ^= 1;
        assert!(!has_tear_shape(&flipped, 64, extent));

        let mut torn = segment.clone();
        torn[512..1024].fill(0);
        assert!(has_tear_shape(&torn, 64, extent));

        let mut torn_tail = segment;
        torn_tail[1024..].fill(0);
        assert!(has_tear_shape(&torn_tail, 64, extent));
    }

    #[test]
    fn has_flipped_length_sees_every_single_bit_flip_of_the_length_but_not_a_tear() {
        // Goal: a record written whole whose length field rotted is told from
        // a torn one, whatever bit flipped. Method: flip each of the 32 bits
        // of `payload_bytes` of a valid two-sector record (followed by zeros,
        // as the log's last record is); then tear the same record instead
        // (its second sector zero).
        let payload = vec![b'x'; 600];
        let segment = segment_with(&payload);
        let length_at = PLACE.offset as usize + 4;
        for bit in 0..32 {
            let mut flipped = segment.clone();
            flipped[length_at + bit / 8] ^= 1 << (bit % 8);
            assert!(has_flipped_length(&flipped, PLACE), "bit {bit}");
        }
        assert!(!has_flipped_length(&segment, PLACE), "a valid record");
        let mut torn = segment;
        torn[512..1024].fill(0);
        assert!(!has_flipped_length(&torn, PLACE));
    }

    proptest! {
        /// The property the torn-tail judgement rests on: a framed record never
        /// contains a zero piece, wherever sector boundaries fall.
        #[test]
        fn framed_records_have_no_zero_piece(
            entry in codec::tests::entry_strategy(),
            offset_words in 8u64..200,
            index in any::<u64>(),
        ) {
            let payload = codec::encoded_entry(&entry);
            let offset = offset_words * 8;
            let mut segment = vec![0; offset as usize];
            let place = RecordPlace { generation: 3, offset };
            encode_record(&mut segment, place, header(index), &payload);
            let extent = segment.len() as u64 - offset;
            prop_assert!(longest_zero_run(&segment[offset as usize..]) < 64);
            prop_assert!(longest_zero_run(&payload) <= MAX_ZERO_RUN_BYTES);
            prop_assert!(!has_tear_shape(&segment, offset, extent));
        }

        #[test]
        fn read_record_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), offset in 0u64..200) {
            let _ = read_record(&bytes, RecordPlace { generation: 1, offset: offset & !7 });
        }
    }

    #[test]
    fn written_end_finds_the_last_nonzero_byte() {
        let mut segment = vec![0u8; 1024];
        assert_eq!(written_end(&segment, 64), 64);
        segment[100] = 1;
        assert_eq!(written_end(&segment, 64), 104);
        // A non-zero byte at each position, inside and across 64-byte blocks.
        for last in 64..1024 {
            let mut segment = vec![0u8; 1024];
            segment[70] = 1;
            segment[last] = 2;
            let expected = align_up(last.max(70) as u64 + 1).min(1024);
            assert_eq!(written_end(&segment, 64), expected);
        }
    }
}

//! Walking the records of a segment image, for tests that damage one
//! record on purpose. Shared by `sim_faults` (through `mod support`) and
//! `fixtures_damaged` (which includes this file alone by path).

use cpwal::format::{
    record_bytes, RecordHeader, RECORD_HEADER_BYTES, SECTOR_BYTES, SEGMENT_HEADER_BYTES,
};

fn header_at(image: &[u8], offset: u64) -> RecordHeader {
    let start = offset as usize;
    bytemuck::pod_read_unaligned(&image[start..start + RECORD_HEADER_BYTES as usize])
}

/// The records of a segment image, up to the first zeroed header that is
/// not padding before the next sync's sector: `(offset, bytes, index)` each.
pub fn records_of(image: &[u8]) -> Vec<(u64, u64, u64)> {
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + RECORD_HEADER_BYTES <= image.len() as u64 {
        let mut header = header_at(image, offset);
        if header.magic == 0 {
            // Each sync's records start at a sector boundary.
            let next = offset.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
            if next + RECORD_HEADER_BYTES > image.len() as u64 {
                break;
            }
            header = header_at(image, next);
            if header.magic == 0 {
                break;
            }
            offset = next;
        }
        let bytes = record_bytes(u64::from(header.payload_bytes));
        records.push((offset, bytes, header.index));
        offset += bytes;
    }
    records
}

//! Appending: records are encoded into the write buffer and reach the tail
//! segment in one `pwrite` when the log is synced; a full tail is synced
//! and the next segment installed (rollover); the tail's sync can be taken
//! out of the owner's lock (group commit).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, InvalidInput, Result};
use crate::format::{record_bytes, RecordHeader, SEGMENT_HEADER_BYTES};
use crate::io::{Storage, StorageFile};

use super::record::{encode_record, RecordPlace};
use super::segment::{new_header, Segment, TermRun};
use super::spare_segment::SPARE_SEGMENT_FILE_NAME;
use super::sync_gate::SyncGate;
use super::{CommitStamp, SegmentedLog};

/// One sync of the tail segment, taken under the engine lock and run
/// without it (group commit): it makes durable every entry below
/// `covered_end`, which were all written before it was taken.
#[derive(Debug)]
pub struct TailSync<F> {
    file: Arc<F>,
    path: PathBuf,
    covered_end: u64,
    gate: Arc<SyncGate>,
}

impl<F: StorageFile> TailSync<F> {
    /// One past the last index this sync makes durable.
    pub fn covered_end(&self) -> u64 {
        self.covered_end
    }

    /// Runs the sync through the log's [`SyncGate`].
    pub fn run(&self) -> Result<()> {
        self.gate
            .sync(&*self.file)
            .map_err(|e| Error::io("fdatasync segment", &self.path, e))
    }
}

impl<S: Storage> SegmentedLog<S> {
    /// Appends entries after the end of the log, without syncing (see
    /// [`SegmentedLog::sync`]). Each element is `(term, payload)`. The
    /// records are encoded into the write buffer and reach the file when the
    /// log is synced or a [`SegmentedLog::tail_sync_handle`] is taken, so one
    /// `pwrite` serves every write since the last sync; a full segment is
    /// written and synced before the next one is created, so only the last
    /// segment ever holds unsynced records.
    ///
    /// On error the handle must be considered failed: in-memory state may be
    /// ahead of the disk.
    pub fn write<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (u64, &'a [u8])> + Clone,
        commit: CommitStamp,
    ) -> Result<()> {
        self.check_fits(entries.clone())?;
        for (term, payload) in entries {
            let size = record_bytes(payload.len() as u64);
            if size > self.pending_room() {
                self.roll_over()?;
            }
            self.encode_into_buffer(term, payload, commit);
        }
        if self.pending_room() < self.segment_size_bytes / 2 {
            self.spare.prepare_ahead();
        }
        Ok(())
    }

    /// Refuses, before anything is written, an entry no segment could hold.
    fn check_fits<'a>(&self, entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> Result<()> {
        let limit = self.segment_size_bytes - SEGMENT_HEADER_BYTES;
        for (_, payload) in entries {
            let bytes = record_bytes(payload.len() as u64);
            if bytes > limit || payload.is_empty() || payload.len() > crate::codec::MAX_ENTRY_BYTES
            {
                return Err(InvalidInput::BatchTooLarge { bytes, limit }.into());
            }
        }
        Ok(())
    }

    /// Bytes left in the tail segment after what is already buffered.
    fn pending_room(&self) -> u64 {
        self.tail().free_bytes() - self.write_buffer.len() as u64
    }

    fn encode_into_buffer(&mut self, term: u64, payload: &[u8], commit: CommitStamp) {
        let index = self.end_index;
        let tail = self.segments.last_mut().expect("an open log has a segment");
        let offset = tail.end_offset + self.write_buffer.len() as u64;
        let header = RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: self.liveness.log_epoch,
            index,
            term,
            durable_end: self.durable_end,
            commit_end: match commit {
                CommitStamp::SelfCommitting => index + 1,
                CommitStamp::Known(end) => end,
            },
        };
        let place = RecordPlace {
            generation: tail.generation(),
            offset,
        };
        encode_record(&mut self.write_buffer, place, header, payload);
        tail.offsets.push(offset as u32);
        if self.term_runs.last().map(|r| r.term) != Some(term) {
            self.term_runs.push(TermRun {
                first_index: index,
                term,
            });
        }
        self.end_index += 1;
    }

    /// Writes the buffered records at the tail's end in one `pwrite`.
    pub(super) fn flush_buffer(&mut self) -> Result<()> {
        if self.write_buffer.is_empty() {
            return Ok(());
        }
        let tail = self.segments.last_mut().expect("an open log has a segment");
        tail.file
            .write_at(tail.end_offset, &self.write_buffer)
            .map_err(|e| Error::io("write segment", &tail.path, e))?;
        tail.end_offset += self.write_buffer.len() as u64;
        self.write_buffer.clear();
        Ok(())
    }

    /// Syncs the full tail and starts a new segment after it, in the spare
    /// file prepared while the tail filled.
    fn roll_over(&mut self) -> Result<()> {
        self.sync()?;
        let tail = self.tail();
        let header = new_header(
            tail.generation() + 1,
            tail.generation(),
            self.end_index,
            self.segment_size_bytes,
        );
        let spare = self.spare.take().map_err(|e| {
            let path = self.storage.path_of(SPARE_SEGMENT_FILE_NAME);
            Error::io("prepare segment", path, e)
        })?;
        let segment = Segment::install(&*self.storage, spare, SPARE_SEGMENT_FILE_NAME, header)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Makes every written entry durable.
    pub fn sync(&mut self) -> Result<()> {
        if self.durable_end == self.end_index {
            return Ok(());
        }
        self.flush_buffer()?;
        let tail = self.tail();
        self.sync_gate
            .sync(&*tail.file)
            .map_err(|e| Error::io("fdatasync segment", &tail.path, e))?;
        self.durable_end = self.end_index;
        Ok(())
    }

    /// Writes the buffered records, then returns a sync of the tail segment
    /// that can run without `&mut self` (group commit) and the index it will
    /// make durable.
    pub fn tail_sync_handle(&mut self) -> Result<TailSync<S::File>> {
        self.flush_buffer()?;
        let tail = self.tail();
        Ok(TailSync {
            file: Arc::clone(&tail.file),
            path: tail.path.clone(),
            covered_end: self.end_index,
            gate: Arc::clone(&self.sync_gate),
        })
    }

    /// Records that a sync through a [`SegmentedLog::tail_sync_handle`]
    /// made everything below `durable_end` durable.
    pub fn mark_durable(&mut self, durable_end: u64) {
        self.durable_end = self.durable_end.max(durable_end.min(self.end_index));
    }
}

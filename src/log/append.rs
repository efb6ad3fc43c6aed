//! Appending: records are encoded into the write buffer and reach the tail
//! segment in one `pwrite` when the log is synced; a full tail is synced
//! and the next segment installed (rollover); the tail's sync can be taken
//! out of the owner's lock (group commit).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, InvalidInput, Result};
use crate::format::{
    record_bytes, segment_bytes_holding, RecordHeader, FIRST_SYNC_OFFSET, MAX_RECORD_PAYLOAD_BYTES,
    SECTOR_BYTES,
};
use crate::io::{Storage, StorageFile};

use super::group_commit::Ticket;
use super::record::{frame_record, seal_records};
use super::segment::{new_header, Segment, TermRun};
use super::spare_segment::SPARE_SEGMENT_FILE_NAME;
use super::{CommitStamp, LogFile, SecondDescription, SegmentedLog};

/// One sync of the tail segment, taken under the engine lock and run
/// without it (group commit): it makes durable every entry below
/// `covered_end`, which were all written before it was taken.
#[derive(Debug)]
pub struct TailSync<F> {
    file: Arc<F>,
    path: PathBuf,
    covered_end: u64,
    /// The log's epoch when it was taken.
    epoch: u64,
}

/// Which file description of the tail segment a group-commit sync runs on.
///
/// Linux reports a writeback error to one `fdatasync` per file
/// description, so two syncs overlapping on one description could both
/// return success for a lost page only one of them saw; the latch keeps
/// syncs of one description from overlapping. A second sync in flight runs
/// on a second description: each description learns of every writeback
/// error recorded after it was opened, or not yet reported to anyone. (An
/// error one description already reported failed that sync, and the
/// failure is latched: nothing is acknowledged after it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDescription {
    /// The description the log writes through.
    Writer,
    /// A second description of the tail, opened on first use (falling back
    /// to the writer's if it cannot be opened).
    Second,
}

impl<F: StorageFile> TailSync<F> {
    /// One past the last index this sync makes durable.
    pub fn covered_end(&self) -> u64 {
        self.covered_end
    }

    /// The log's epoch when the sync was taken.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Runs the sync; the latch keeps it from overlapping another sync on
    /// its file description, and refuses it after any failure.
    pub fn run(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync segment", &self.path, e))
    }
}

impl<S: Storage> SegmentedLog<S> {
    /// Appends entries after the end of the log, without syncing (see
    /// [`SegmentedLog::sync`]). Each element is `(term, payload)`. The
    /// records are framed into the write buffer and reach the file when the
    /// log is synced or a [`SegmentedLog::tail_sync_handle`] is taken, so one
    /// `pwrite` serves every write since the last sync; a full segment is
    /// written and synced before the next one is created, so only the last
    /// segment ever holds unsynced records.
    ///
    /// The entries are one batch. A batch of self-committing entries (a sole
    /// voter's) is atomic across errors and crashes: every record carries
    /// the batch's end as its commit point, recovery drops a batch whose
    /// records do not all survive, and the batch never spans two segments
    /// (when it does not fit in the tail the log rolls over before writing
    /// any of it; one larger than a fresh segment holds is refused as
    /// [`InvalidInput::BatchTooLarge`]). So a failed rollover, a full disk
    /// or a crash leaves all of it or none. Other batches may span segments,
    /// and a single entry too large for a segment of the configured size
    /// gets a segment sized for it (see [`Self::roll_over`]).
    ///
    /// On error the handle must be considered failed: in-memory state may be
    /// ahead of the disk.
    pub fn write<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (u64, &'a [u8])> + Clone,
        commit: CommitStamp,
    ) -> Result<()> {
        let (count, bytes) = Self::check_fits(entries.clone())?;
        let fresh_room = self.segment_size_bytes - FIRST_SYNC_OFFSET;
        if commit == CommitStamp::SelfCommitting && bytes > fresh_room {
            let limit = fresh_room;
            return Err(InvalidInput::BatchTooLarge { bytes, limit }.into());
        }
        if bytes > self.pending_room() && bytes <= fresh_room {
            self.roll_over(0)?;
        }
        let commit_end = match commit {
            CommitStamp::SelfCommitting => self.end_index + count,
            CommitStamp::Known(end) => end,
        };
        for (term, payload) in entries {
            if record_bytes(payload.len() as u64) > self.pending_room() {
                self.roll_over(payload.len() as u64)?;
            }
            self.frame_into_buffer(term, payload, commit_end);
        }
        if self.pending_room() < self.segment_size_bytes / 2 {
            self.spare.prepare_ahead();
        }
        self.check_invariants();
        Ok(())
    }

    /// Refuses, before anything is written, an entry no record can carry:
    /// an empty one, or one above [`MAX_RECORD_PAYLOAD_BYTES`]. Any other
    /// entry fits a segment (see [`Self::roll_over`]). Returns the batch's
    /// entry count and the bytes its records take.
    fn check_fits<'a>(entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> Result<(u64, u64)> {
        let (mut count, mut total) = (0u64, 0u64);
        for (_, payload) in entries {
            if payload.is_empty() {
                return Err(InvalidInput::EmptyEntry.into());
            }
            if payload.len() > MAX_RECORD_PAYLOAD_BYTES {
                return Err(InvalidInput::EntryTooLarge {
                    bytes: payload.len() as u64,
                    limit: MAX_RECORD_PAYLOAD_BYTES as u64,
                }
                .into());
            }
            count += 1;
            total = total.saturating_add(record_bytes(payload.len() as u64));
        }
        Ok((count, total))
    }

    /// Where the write buffer goes in the tail: the next sector boundary at
    /// or after the tail's end, so that every sync's write starts a sector
    /// of its own (see the format's "Torn tail or corruption": a sector then
    /// never holds records of two syncs, and rot in it cannot pass for a
    /// tear unless it is in the last sync). The header's sector holds the
    /// header alone, so the first sync starts at the second sector
    /// ([`FIRST_SYNC_OFFSET`]).
    pub(super) fn buffer_offset(&self) -> u64 {
        let end = self.tail().end_offset;
        end.div_ceil(SECTOR_BYTES) * SECTOR_BYTES
    }

    /// Bytes left in the tail segment after what is already buffered.
    fn pending_room(&self) -> u64 {
        self.tail()
            .header
            .size_bytes
            .saturating_sub(self.buffer_offset() + self.write_buffer.len() as u64)
    }

    /// Frames one record into the write buffer. Its `durable_end` and
    /// checksum are filled in when the buffer is written
    /// ([`SegmentedLog::flush_buffer`]), so the record vouches for every
    /// sync that completed before it reached the file.
    fn frame_into_buffer(&mut self, term: u64, payload: &[u8], commit_end: u64) {
        let index = self.end_index;
        let offset = self.buffer_offset() + self.write_buffer.len() as u64;
        let header = RecordHeader {
            magic: 0,
            payload_bytes: 0,
            log_epoch: self.liveness.log_epoch,
            index,
            term,
            durable_end: 0,
            commit_end,
        };
        frame_record(&mut self.write_buffer, header, payload);
        let tail = self.segments.last_mut().expect("an open log has a segment");
        tail.offsets.push(offset as u32);
        if self.term_runs.last().map(|r| r.term) != Some(term) {
            self.term_runs.push(TermRun {
                first_index: index,
                term,
            });
        }
        self.end_index += 1;
    }

    /// Seals the buffered records (their `durable_end` is what is durable
    /// now; then their checksums) and writes them at the tail's next sector
    /// boundary in one `pwrite`.
    pub(super) fn flush_buffer(&mut self) -> Result<()> {
        if self.write_buffer.is_empty() {
            return Ok(());
        }
        let at = self.buffer_offset();
        let tail = self.segments.last_mut().expect("an open log has a segment");
        seal_records(
            &mut self.write_buffer,
            tail.generation(),
            at,
            self.durable_end,
        );
        tail.file
            .write_at(at, &self.write_buffer)
            .map_err(|e| Error::io("write segment", &tail.path, e))?;
        tail.end_offset = at + self.write_buffer.len() as u64;
        self.write_buffer.clear();
        Ok(())
    }

    /// Syncs the full tail and starts a new segment after it that holds at
    /// least a record of `payload_bytes`: in the spare file prepared while
    /// the tail filled, or, for a record larger than a segment of the
    /// configured size holds (an openraft membership of many long names in
    /// small segments), in a segment created just large enough for it.
    pub(super) fn roll_over(&mut self, payload_bytes: u64) -> Result<()> {
        self.sync()?;
        let tail = self.tail();
        let (generation, first_index) = (tail.generation() + 1, self.end_index);
        let needed = segment_bytes_holding(payload_bytes);
        if needed > self.segment_size_bytes {
            let previous = tail.generation();
            let segment =
                Segment::create(&*self.storage, generation, previous, first_index, needed)?;
            self.segments.push(segment);
            self.check_invariants();
            return Ok(());
        }
        let header = new_header(
            generation,
            tail.generation(),
            first_index,
            self.segment_size_bytes,
        );
        let spare = self.spare.take().map_err(|e| {
            let path = self.storage.path_of(SPARE_SEGMENT_FILE_NAME);
            Error::io("prepare segment", path, e)
        })?;
        let segment = Segment::install(&*self.storage, spare, SPARE_SEGMENT_FILE_NAME, header)?;
        self.segments.push(segment);
        self.check_invariants();
        Ok(())
    }

    /// The first half of [`Self::sync`]: writes the buffered records and
    /// starts their writeback without waiting for it, so that the caller
    /// can work while the disk writes. Nothing is durable until `sync`
    /// returns; a failure here is latched as a failed sync.
    pub fn start_sync(&mut self) -> Result<()> {
        let (at, length) = (self.buffer_offset(), self.write_buffer.len() as u64);
        self.flush_buffer()?;
        let tail = self.tail();
        tail.file
            .start_write_back(at, length)
            .map_err(|e| Error::io("write back segment", &tail.path, e))
    }

    /// Makes every written entry durable (and tells group commit's
    /// waiters).
    pub fn sync(&mut self) -> Result<()> {
        if self.durable_end == self.end_index {
            return Ok(());
        }
        self.flush_buffer()?;
        let tail = self.tail();
        tail.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync segment", &tail.path, e))?;
        self.set_durable_end(self.end_index);
        self.check_invariants();
        Ok(())
    }

    /// Writes the buffered records, then returns a sync of the tail segment
    /// on `description` that can run without `&mut self` (group commit),
    /// stamped with the log's epoch, and the index it will make durable.
    pub fn tail_sync_handle(
        &mut self,
        description: SyncDescription,
    ) -> Result<TailSync<LogFile<S>>> {
        self.flush_buffer()?;
        let file = match description {
            SyncDescription::Writer => Arc::clone(&self.tail().file),
            SyncDescription::Second => self.second_description(),
        };
        Ok(TailSync {
            file,
            path: self.tail().path.clone(),
            covered_end: self.end_index,
            epoch: self.epoch,
        })
    }

    /// The tail's second file description (see [`SyncDescription`]),
    /// opened the first time the tail needs one; the writer's when it
    /// cannot be opened (the sync then waits for the one running there).
    ///
    /// It is kept with the writer's description it was opened beside, and
    /// reused only while that is still the tail's: a generation number is
    /// not enough, since a suffix truncation removes tail segments and the
    /// next rollover gives their numbers to new files (a sync of the
    /// removed file's description would then make nothing of the new tail
    /// durable). The kept writer's description cannot be freed and its
    /// address reused while it is held here.
    fn second_description(&mut self) -> Arc<LogFile<S>> {
        let tail = self.segments.last().expect("an open log has a segment");
        match &self.second_description {
            Some(second) if Arc::ptr_eq(&second.beside, &tail.file) => Arc::clone(&second.file),
            _ => match self.storage.open(&tail.name, true) {
                Ok(file) => {
                    let file = Arc::new(file);
                    self.second_description = Some(SecondDescription {
                        beside: Arc::clone(&tail.file),
                        file: Arc::clone(&file),
                    });
                    file
                }
                Err(_) => Arc::clone(&tail.file),
            },
        }
    }

    /// Records that `sync`, taken with [`SegmentedLog::tail_sync_handle`],
    /// succeeded: everything below its end is durable — unless a truncation
    /// or restart came since it was taken (its epoch is then stale), when it
    /// proves nothing about the entries the log holds now.
    pub fn mark_durable(&mut self, sync: &TailSync<LogFile<S>>) {
        if sync.epoch == self.epoch {
            let covered = sync.covered_end.min(self.end_index);
            self.set_durable_end(self.durable_end.max(covered));
        }
        self.check_invariants();
    }

    /// A [`Ticket`] for the entries at `written`, just written under the
    /// owner's lock, to redeem with [`GroupCommit::wait`](super::GroupCommit::wait).
    pub fn ticket(&self, written: Range<u64>) -> Ticket {
        debug_assert!(written.end <= self.end_index);
        self.group.ticket(written, self.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::hard_state::HardState;
    use crate::identity::ClusterVoterIdentity;
    use crate::io::{Access, LockMode, OsStorage};
    use crate::log::LatchedStorage;
    use crate::node_role::NodeRole;

    fn open(dir: &std::path::Path, state: &HardState) -> SegmentedLog<OsStorage> {
        let storage = OsStorage::open(dir, LockMode::Exclusive).unwrap();
        let storage = Arc::new(LatchedStorage::new(storage));
        SegmentedLog::open(storage, state, 4096, Access::Writable, |_| Ok(()))
            .unwrap()
            .0
    }

    #[test]
    fn write_refuses_only_entries_no_record_can_carry() {
        // Goal: an empty entry, or one above the record payload limit, gets
        // its own typed error before anything is written; every other entry
        // is stored whatever the segment size, the largest one in a segment
        // made large enough for it. Method: 4 KiB segments; write batches
        // holding an empty entry and an entry one byte over the limit (each
        // behind a valid one); then a small entry and the largest; sync,
        // reopen and read both back.
        let dir = tempfile::tempdir().unwrap();
        let node = ClusterVoterIdentity::from_certificate_subject("CN=a").unwrap();
        let state = HardState::new(node, NodeRole::Replica);
        let mut log = open(dir.path(), &state);
        let largest = vec![7u8; MAX_RECORD_PAYLOAD_BYTES];
        let over = vec![7u8; MAX_RECORD_PAYLOAD_BYTES + 1];
        let stamp = CommitStamp::Known(0);
        let empty = log.write([(1, &b"ok"[..]), (1, &b""[..])], stamp);
        assert!(
            matches!(empty, Err(Error::InvalidInput(InvalidInput::EmptyEntry))),
            "{empty:?}"
        );
        let too_large = log.write([(1, &b"ok"[..]), (1, &over[..])], stamp);
        let expected = InvalidInput::EntryTooLarge {
            bytes: over.len() as u64,
            limit: MAX_RECORD_PAYLOAD_BYTES as u64,
        };
        assert!(
            matches!(&too_large, Err(Error::InvalidInput(e)) if *e == expected),
            "{too_large:?}"
        );
        assert_eq!(log.end_index(), 0, "a refused batch writes nothing");
        log.write([(1, &b"ok"[..]), (1, &largest[..])], stamp)
            .unwrap();
        log.sync().unwrap();
        let sizes: Vec<u64> = log.segments().iter().map(|s| s.header.size_bytes).collect();
        assert_eq!(
            sizes,
            vec![4096, segment_bytes_holding(largest.len() as u64)]
        );
        drop(log);
        let log = open(dir.path(), &state);
        assert_eq!(&*log.read(0).unwrap().1, b"ok");
        assert_eq!(&*log.read(1).unwrap().1, &largest[..]);
    }
}

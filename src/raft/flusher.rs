//! The flusher: a thread that makes appended entries durable and only then
//! fires openraft's `LogFlushed` callbacks — group commit for the
//! replicated log.
//!
//! `append` writes its records under the log lock and queues a
//! [`FlushRequest`] naming the tail segment and the end it must make
//! durable. The thread takes every request queued so far, syncs the tail of
//! the newest one once (earlier segments were synced in full when the log
//! rolled over), marks the log durable up to it and fires all their
//! callbacks. Appends that arrive during a sync therefore share the next
//! one. The sync runs outside the lock, through
//! [`SegmentedLog::tail_sync_handle`](crate::log::SegmentedLog::tail_sync_handle).
//!
//! A sync failure is latched as the log's failure (the page cache can no
//! longer be trusted) and every pending callback receives the error.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;

use crate::error::{Error, Result};
use crate::io::OsStorage;
use crate::log::{LogFile, TailSync};
use crate::raft::log_store::LogShared;
use crate::raft::types::CpwalRaftConfig;

/// A request to make the log durable up to `end` and then report.
pub(crate) struct FlushRequest {
    /// The sync of the tail segment as it was when the entries were written.
    pub(crate) sync: TailSync<LogFile<OsStorage>>,
    /// The log's rewrite count when the entries were written; a sync may
    /// only mark the log durable if no truncation or restart came since.
    pub(crate) rewrites: u64,
    /// openraft's completion callback.
    pub(crate) callback: LogFlushed<CpwalRaftConfig>,
}

/// The handle that owns the flusher thread; dropping it drains the queue
/// and joins the thread.
#[derive(Debug)]
pub(crate) struct Flusher {
    sender: Option<Sender<FlushRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread for the log in `shared`.
    pub(crate) fn start(shared: Arc<Mutex<LogShared>>) -> Result<Self> {
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("cpwal-raft-flusher".into())
            .spawn(move || run(&shared, &receiver))
            .map_err(|e| Error::io("spawn flusher thread", PathBuf::new(), e))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues a request. If the thread is gone (it only exits when this
    /// handle drops) the callback is failed at once.
    pub(crate) fn request(&self, request: FlushRequest) {
        let sender = self.sender.as_ref().expect("sender lives until drop");
        if let Err(returned) = sender.send(request) {
            let error = io::Error::other("cpwal flusher stopped");
            returned.0.callback.log_io_completed(Err(error));
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Mutex<LogShared>, receiver: &Receiver<FlushRequest>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        let newest = batch.last().expect("batch is not empty");
        let synced = newest.sync.run();
        let outcome = {
            let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
            match synced {
                Ok(()) => match guard.check_not_failed() {
                    Ok(()) => {
                        if guard.rewrites == newest.rewrites {
                            guard.log.mark_durable(newest.sync.covered_end());
                        }
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            }
        };
        for request in batch {
            let result = outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| io::Error::other(e.clone()));
            request.callback.log_io_completed(result);
        }
    }
}

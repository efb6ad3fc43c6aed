//! The flusher: a thread that makes appended entries durable through the
//! log's group commit ([`crate::log::GroupCommit`]) and only then fires
//! openraft's `LogFlushed` callbacks.
//!
//! `append` writes its records under the log lock, takes a group-commit
//! ticket and queues it with its callback. The thread takes every request
//! queued so far and redeems their tickets in order: the first one leads a
//! sync that covers all of them (they were written before it was taken),
//! the others find their entries durable. Appends that arrive during a sync
//! share the next one. The sync runs outside the lock.
//!
//! A callback gets an error when a failure stopped the log before its
//! entries were durable, and when a truncation removed them first (openraft
//! waits for each append's callback before it truncates, so it never sees
//! the latter; its storage suite might).

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;

use crate::error::{Error, Result};
use crate::log::{GroupCommit, SyncOwner, Ticket};
use crate::raft::types::CpwalRaftConfig;

/// A request to report once the entries of `ticket` are durable.
pub(crate) struct FlushRequest {
    /// The appended entries' claim on the log's group commit.
    pub(crate) ticket: Ticket,
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
    /// Starts the thread for the log `owner` locks, whose group commit is
    /// `group`.
    pub(crate) fn start<O>(owner: O, group: Arc<GroupCommit>) -> Result<Self>
    where
        O: SyncOwner + Send + 'static,
    {
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("cpwal-raft-flusher".into())
            .spawn(move || run(&owner, &group, &receiver))
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

fn run(owner: &impl SyncOwner, group: &GroupCommit, receiver: &Receiver<FlushRequest>) {
    while let Ok(first) = receiver.recv() {
        let batch: Vec<_> = std::iter::once(first).chain(receiver.try_iter()).collect();
        for request in batch {
            let durable = group.wait(&request.ticket, owner);
            request
                .callback
                .log_io_completed(durable.map_err(io::Error::other));
        }
    }
}

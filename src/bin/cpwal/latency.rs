//! Latency samples, their percentiles, and the raw-syscall baseline:
//! `pwrite` + `fdatasync` of a record-sized buffer at successive offsets of a
//! preallocated file on the same disk, which is the floor any durable append
//! can reach.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::failure::CliError;

/// Percentiles of a set of samples, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

impl Percentiles {
    /// Percentiles of `samples`; `None` if there are none.
    pub fn of(samples: &[u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let at = |fraction: f64| {
            let rank = (fraction * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Some(Self {
            count: sorted.len(),
            p50: at(0.50),
            p99: at(0.99),
        })
    }
}

/// Milliseconds with two decimals, for humans.
pub fn millis(nanos: u64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

/// A line "p50 X, p99 Y (n samples)", or a note that there were none.
pub fn describe(samples: &[u64]) -> String {
    match Percentiles::of(samples) {
        Some(p) => format!(
            "p50 {}, p99 {} ({} samples)",
            millis(p.p50),
            millis(p.p99),
            p.count
        ),
        None => "no samples".to_owned(),
    }
}

/// Measures `samples` rounds of `pwrite(record_bytes)` + `fdatasync` on a
/// scratch file created in `directory` (and removed afterwards), stopping
/// early once `budget` has passed. Returns each round's latency.
pub fn raw_fdatasync_latencies(
    directory: &Path,
    record_bytes: usize,
    samples: usize,
    budget: Duration,
) -> Result<Vec<u64>, CliError> {
    let path = directory.join(format!(".cpwal-fdatasync-probe-{}", std::process::id()));
    let io = |what: &str| {
        let context = format!("{what} {}", path.display());
        move |e| CliError::io(context, e)
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io("create probe file"))?;
    let measured = (|| {
        let length = (record_bytes * samples) as u64;
        fs2::FileExt::allocate(&file, length.max(4096)).map_err(io("allocate probe file"))?;
        file.sync_all().map_err(io("fsync probe file"))?;
        let buffer = vec![0xA5u8; record_bytes];
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(samples);
        for round in 0..samples {
            let began = Instant::now();
            file.write_all_at(&buffer, (round * record_bytes) as u64)
                .map_err(io("write probe file"))?;
            file.sync_data().map_err(io("fdatasync probe file"))?;
            latencies.push(began.elapsed().as_nanos() as u64);
            if started.elapsed() > budget {
                break;
            }
        }
        Ok(latencies)
    })();
    drop(file);
    let removed = std::fs::remove_file(&path).map_err(io("remove probe file"));
    let latencies = measured?;
    removed?;
    Ok(latencies)
}

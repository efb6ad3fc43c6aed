//! `cpwal crash-test`: kill a real writer process with SIGKILL at random
//! moments, reopen its directory, and check G1–G5 against what it
//! acknowledged, many times over in one directory. With `--shutdown-fs`,
//! half the cycles cut the power instead: the file system under the
//! directory is shut down without flushing its log, mounted again, and the
//! same checks run (see [`crate::fs_shutdown`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpwal::{codec::encoded_entry, format::record_bytes, DurableControlPlane};

use crate::checker::Model;
use crate::failure::CliError;
use crate::fs_shutdown::MountedFileSystem;
use crate::latency::{describe, raw_fdatasync_latencies};
use crate::output::outln;
use crate::progress::{Progress, Unit};
use crate::sabotage::Sabotage;
use crate::workload::{crash_test_options, expected_entry, identity, Message, Rng, NODE_SUBJECT};

/// What to run.
#[derive(Debug, Clone)]
pub struct CrashTestConfig {
    /// The data directory; `None` for a fresh temporary one.
    pub directory: Option<PathBuf>,
    /// Roughly how long to keep killing.
    pub seconds: f64,
    /// The seed for the kill moments and the child's operations.
    pub seed: u64,
    /// Self-test of the checker: damage the directory on purpose after
    /// each kill; the run must then report violations.
    pub sabotage: Option<Sabotage>,
    /// The file system to shut down (power loss) in half the cycles.
    pub shutdown: Option<MountedFileSystem>,
}

/// Counters beyond the model's.
#[derive(Debug, Default)]
struct Totals {
    cycles: u64,
    shutdowns: u64,
    torn_tails: u64,
    torn_bytes: u64,
    leftover_files: u64,
}

/// Runs the crash test; `Err(Violations)` if any guarantee broke.
pub fn run(config: &CrashTestConfig) -> Result<(), CliError> {
    let (data, scratch_root) = prepare_directory(config.directory.as_deref())?;
    eprintln!(
        "crash-test: seed {}, directory {}, about {} s; a child writes with real fdatasync, the parent kills it with SIGKILL at random moments{} and checks G1-G5 after each reopen",
        config.seed,
        data.display(),
        config.seconds,
        config.shutdown.as_ref().map_or(String::new(), |fs| format!(
            " or shuts down {} without flushing its log and mounts it again",
            fs.describe()
        )),
    );
    // The node exists before the first child starts: each child opens it,
    // as a restarted process would, and never creates one.
    drop(
        DurableControlPlane::create(&data, identity(NODE_SUBJECT), crash_test_options())
            .map_err(|e| CliError::engine("crash-test could not create its node", e))?,
    );
    let mut model = Model::new(config.seed);
    let mut totals = Totals::default();
    let mut rng = Rng::new(config.seed, u64::MAX);
    let started = Instant::now();
    let progress = Progress::new("crash-test", Unit::Seconds);
    while started.elapsed().as_secs_f64() < config.seconds && model.violations.is_empty() {
        run_cycle(&data, config, &mut rng, &mut model, &mut totals, &progress)?;
        progress.set(started.elapsed().as_secs(), config.seconds.ceil() as u64);
    }
    drop(progress);
    let probe_directory = data.parent().unwrap_or(Path::new("."));
    let probe_bytes = record_bytes(encoded_entry(&expected_entry(config.seed, 0, 1)).len() as u64);
    let raw = raw_fdatasync_latencies(
        probe_directory,
        probe_bytes as usize,
        200,
        Duration::from_secs(3),
    )?;
    print_summary(config, &data, &model, &totals, &raw, probe_bytes)?;
    if !model.violations.is_empty() {
        for violation in &model.violations {
            eprintln!("VIOLATION: {violation}");
        }
        eprintln!(
            "replay: cpwal crash-test --seed {} --seconds {}{}; directory kept at {}",
            config.seed,
            config.seconds,
            config
                .sabotage
                .map_or(String::new(), |s| format!(" --sabotage {}", s.name())),
            data.display()
        );
        return Err(CliError::Violations(model.violations.len()));
    }
    if let Some(root) = scratch_root {
        std::fs::remove_dir_all(&root)
            .map_err(|e| CliError::io(format!("remove {}", root.display()), e))?;
    }
    Ok(())
}

/// The data directory to use, and the temporary root to delete afterwards
/// when the tool made one. A given directory must be absent or empty: the
/// checker's model starts from nothing.
fn prepare_directory(given: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>), CliError> {
    if let Some(directory) = given {
        let occupied = std::fs::read_dir(directory).is_ok_and(|mut d| d.next().is_some());
        if occupied {
            return Err(CliError::DirectoryNotEmpty(directory.to_path_buf()));
        }
        return Ok((directory.to_path_buf(), None));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let root =
        std::env::temp_dir().join(format!("cpwal-crash-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&root)
        .map_err(|e| CliError::io(format!("create {}", root.display()), e))?;
    Ok((root.join("data"), Some(root)))
}

/// How a cycle stops the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    /// SIGKILL: the page cache survives.
    Kill,
    /// The file system is shut down without flushing its log, then the
    /// child is killed and the file system mounted again: a power cut.
    Shutdown,
}

/// One cycle: start the child, stop it at a random moment (SIGKILL, or a
/// file-system shutdown when configured), feed what it acknowledged to the
/// model, reopen and check.
fn run_cycle(
    data: &Path,
    config: &CrashTestConfig,
    rng: &mut Rng,
    model: &mut Model,
    totals: &mut Totals,
    progress: &Progress,
) -> Result<(), CliError> {
    let cycle = totals.cycles;
    let saved = config.sabotage.map(|s| s.before_cycle(data)).transpose()?;
    let (mut child, reader) = spawn_child(data, config.seed, cycle)?;
    std::thread::sleep(Duration::from_millis(5 + rng.below(250)));
    let interruption = match &config.shutdown {
        Some(_) if rng.below(2) == 0 => Interruption::Shutdown,
        _ => Interruption::Kill,
    };
    if let (Interruption::Shutdown, Some(file_system)) = (interruption, &config.shutdown) {
        // The child may see EIO and exit by itself from here on.
        file_system.shut_down()?;
    } else if let Some(status) = child
        .try_wait()
        .map_err(|e| CliError::io("wait for crash-test child", e))?
    {
        return Err(CliError::ChildExited { cycle, status });
    }
    child
        .kill()
        .map_err(|e| CliError::io("kill crash-test child", e))?;
    child
        .wait()
        .map_err(|e| CliError::io("reap crash-test child", e))?;
    let output = reader.join().map_err(|_| CliError::PipeReaderPanicked)?;
    if let (Interruption::Shutdown, Some(file_system)) = (interruption, &config.shutdown) {
        file_system.remount()?;
        totals.shutdowns += 1;
    }
    let acks_before = model.acknowledged_entries + model.acknowledged_states;
    for message in complete_lines(&output).filter_map(Message::parse) {
        model.apply(message);
    }
    let acks = model.acknowledged_entries + model.acknowledged_states - acks_before;
    totals.cycles += 1;
    if let (Some(sabotage), Some(saved)) = (config.sabotage, saved) {
        sabotage.after_kill(data, saved)?;
    }
    check_cycle(data, cycle, interruption, acks, model, totals, progress)
}

impl Interruption {
    fn name(self) -> &'static str {
        match self {
            Interruption::Kill => "SIGKILL",
            Interruption::Shutdown => "shutdown",
        }
    }
}

/// Starts the child and a thread collecting its stdout until it dies.
fn spawn_child(
    data: &Path,
    seed: u64,
    cycle: u64,
) -> Result<(Child, JoinHandle<Vec<u8>>), CliError> {
    let program =
        std::env::current_exe().map_err(|e| CliError::io("find the cpwal executable", e))?;
    let mut child = Command::new(program)
        .arg("crash-child")
        .arg("--dir")
        .arg(data)
        .args(["--seed", &seed.to_string(), "--cycle", &cycle.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::io("start crash-test child", e))?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error can only end the stream early; what arrived counts.
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    Ok((child, reader))
}

/// The newline-terminated lines of `output`; a last line cut short by the
/// kill was never fully reported and is ignored.
fn complete_lines(output: &[u8]) -> impl Iterator<Item = &str> {
    let complete = output
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&output[..0], |end| &output[..end]);
    std::str::from_utf8(complete)
        .unwrap_or("")
        .split('\n')
        .filter(|line| !line.is_empty())
}

/// Reopens the directory as a restarted node would and checks it.
fn check_cycle(
    data: &Path,
    cycle: u64,
    interruption: Interruption,
    acks: u64,
    model: &mut Model,
    totals: &mut Totals,
    progress: &Progress,
) -> Result<(), CliError> {
    let opened = DurableControlPlane::open(data, identity(NODE_SUBJECT), crash_test_options());
    let node = match opened {
        Ok(node) => node,
        Err(error) if error.as_corruption().is_some() => {
            model.violations.push(format!(
                "recovery after {} in cycle {cycle} failed: {error}",
                interruption.name()
            ));
            return Ok(());
        }
        Err(error) => return Err(CliError::engine("reopen after the interruption", error)),
    };
    let torn = node.recovery_report().torn_tail.clone();
    totals.leftover_files += node.recovery_report().removed_files.len() as u64;
    if let Some(tail) = &torn {
        totals.torn_tails += 1;
        totals.torn_bytes += tail.bytes;
    }
    let found = model.check_recovered(&node);
    let vote = cpwal::ControlPlaneConsensus::durable_vote(&node);
    progress.suspend(|| {
        eprintln!(
        "cycle {:>4}: {:<8} {acks:>4} acks; recovered term {} vote {} log 0..{} ({} acknowledged){}{}",
        cycle + 1,
        interruption.name(),
        vote.term.0,
        vote.voted_for.as_ref().map_or("-", |v| v.as_str()),
        node.last_index().map_or(0, |i| i.0 + 1),
        model.acknowledged_end(),
        torn.map_or(String::new(), |t| format!(
            "; torn tail of {} bytes dropped",
            t.bytes
        )),
        if found > 0 { "; VIOLATION" } else { "" },
    )
    });
    Ok(())
}

fn print_summary(
    config: &CrashTestConfig,
    data: &Path,
    model: &Model,
    totals: &Totals,
    raw: &[u64],
    probe_bytes: u64,
) -> Result<(), CliError> {
    outln!(
        "crash-test summary (seed {}, directory {})",
        config.seed,
        data.display()
    )?;
    outln!(
        "cycles: {} (SIGKILL at a random moment, reopen, full check); {} of them file-system shutdowns (power loss){}",
        totals.cycles,
        totals.shutdowns,
        config
            .shutdown
            .as_ref()
            .map_or(String::new(), |fs| format!(" of {}", fs.describe())),
    )?;
    outln!(
        "acknowledged: {} entries in {} appends, {} votes/term changes",
        model.acknowledged_entries,
        model.append_latencies_ns.len(),
        model.acknowledged_states
    )?;
    outln!(
        "verified: {} entry reads matched, {} recovered votes/terms checked; the last check covered {} acknowledged entries",
        model.entries_checked,
        model.states_checked,
        model.acknowledged_end()
    )?;
    outln!("violations: {}", model.violations.len())?;
    outln!(
        "torn tails dropped: {} ({} bytes); leftover files removed: {}",
        totals.torn_tails,
        totals.torn_bytes,
        totals.leftover_files
    )?;
    outln!(
        "durable append latency: {}",
        describe(&model.append_latencies_ns)
    )?;
    outln!(
        "raw pwrite+fdatasync ({probe_bytes} B, same disk): {}",
        describe(raw)
    )?;
    outln!(
        "vote/term latency (two hard-state syncs): {}",
        describe(&model.state_latencies_ns)
    )?;
    Ok(())
}

//! The processes the bench starts: each is stopped when its handle drops,
//! its output goes to a log file that errors quote, and its id is written to
//! a list that `run.sh` uses to stop leftovers if the bench itself is killed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a process may take to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The list of started processes, one `PID COMM` per line. `run.sh`'s trap
/// kills those still alive whose `/proc/PID/comm` still matches, so a reused
/// id is never hit.
#[derive(Debug, Clone)]
pub struct PidLog {
    path: Option<PathBuf>,
}

impl PidLog {
    pub fn new(path: Option<PathBuf>) -> PidLog {
        PidLog { path }
    }

    /// Records `pid` as running `program` (a path or a name).
    pub fn record(&self, pid: u32, program: &str) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // The name as the kernel shows it in /proc/PID/comm: the file name,
        // cut to 15 bytes. Not read from /proc now: right after spawn the
        // child may not have exec'd yet and still shows the bench's name.
        let name = Path::new(program)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(program);
        let comm: String = name
            .chars()
            .scan(0, |len, c| {
                *len += c.len_utf8();
                (*len <= 15).then_some(c)
            })
            .collect();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("while opening {}", path.display()))?;
        writeln!(file, "{pid} {comm}")?;
        Ok(())
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("while reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }
}

/// A child process with its log; SIGTERM, then SIGKILL, when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, pids: &PidLog) -> anyhow::Result<Proc> {
        let out = File::create(log).with_context(|| format!("while creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .with_context(|| format!("while starting {name} ({program})"))?;
        let proc = Proc {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        };
        pids.record(proc.pid(), &program)?;
        Ok(proc)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails, quoting the log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log {} ends with:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid())
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    pub fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        signal(self.pid(), "-TERM");
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!("bench: {} ignored SIGTERM; killing it", self.name);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill SIGNAL PID` (the workspace forbids the `unsafe` a direct call needs).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// CPU time (user + system) a process has used, with that of its children
/// that have ended and been waited for (`cutime`, `cstime`): for PostgreSQL's
/// postmaster, that covers the backends of closed connections.
pub fn cpu_seconds(pid: u32, with_children: bool) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("while reading /proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11) // state .. cmajflt; utime is the 14th field of the line
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = if with_children {
        fields.iter().sum::<u64>()
    } else {
        fields.iter().take(2).sum()
    };
    Ok(ticks as f64 / clock_ticks())
}

/// CPU time of a process tree: the process (with its waited-for children)
/// and every child still running (PostgreSQL's live backends).
pub fn tree_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let mut total = cpu_seconds(pid, true)?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let parent = std::fs::read_to_string(format!("/proc/{child}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|p| p.trim().parse::<u32>().ok())
            });
        if parent == Some(pid) {
            total += cpu_seconds(child, false).unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

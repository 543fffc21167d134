//! A PostgreSQL 15 server of our own, one per test.
//!
//! `initdb` runs once per machine into a cached template directory; each
//! server copies it (milliseconds) instead of running `initdb` (seconds).
//! PostgreSQL refuses to run as root, so under root (as in CI) the server runs
//! as Debian's `postgres` user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::config::Secret;
use common::db::PgConfig;

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The database the services use; each server is new, so each test has its own.
pub const DATABASE: &str = "votes";

/// A running PostgreSQL server on a free port with a `votes` database.
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Who runs the server: `Some((uid, gid))` of `postgres` under root.
fn run_as() -> Option<(u32, u32)> {
    static RUN_AS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *RUN_AS.get_or_init(|| {
        let id = |args: &[&str]| -> Option<u32> {
            let out = Command::new("id").args(args).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        if id(&["-u"])? != 0 {
            return None;
        }
        let uid = id(&["-u", "postgres"]).expect("running as root needs the postgres user");
        let gid = id(&["-g", "postgres"]).expect("running as root needs the postgres group");
        Some((uid, gid))
    })
}

fn command(program: &str) -> Command {
    let bin = crate::binary(&[&format!("{BIN}/{program}")], "postgresql-15");
    let mut cmd = Command::new(bin);
    if let Some((uid, gid)) = run_as() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn give_to_server(path: &Path) {
    if let Some((uid, gid)) = run_as() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

/// The initdb'd template, made once and shared by every test process.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let uid = run_as().map_or_else(|| "user".to_owned(), |(u, _)| u.to_string());
        let path = std::env::temp_dir().join(format!("swarmvote-pg15-template-{uid}"));
        if path.join("PG_VERSION").is_file() {
            return path;
        }
        let staging = tempfile::Builder::new()
            .prefix("swarmvote-pg15-initdb-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        give_to_server(&staging);
        let status = command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&staging)
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        // Another process may have won the race; its template is as good.
        if std::fs::rename(&staging, &path).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        path
    })
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template().join("."))
            .arg(dir.path())
            .status()
            .expect("cp runs");
        assert!(status.success(), "copying the template failed");
        give_to_server(dir.path());
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let mut server = Postgres {
            port: crate::free_port(),
            dir,
            child: None,
        };
        server.launch();
        server.psql(&format!("CREATE DATABASE {DATABASE}"));
        server
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("a log file");
        let child = command("postgres")
            .arg("-D")
            .arg(self.dir.path())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.is_ready() {
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_ready(&self) -> bool {
        Command::new(format!("{BIN}/pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs SQL with psql as the superuser and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(
            if sql.starts_with("CREATE DATABASE") {
                "postgres"
            } else {
                DATABASE
            },
            sql,
        )
    }

    fn psql_in(&self, database: &str, sql: &str) -> String {
        self.try_psql_in(database, sql)
            .unwrap_or_else(|e| panic!("psql failed: {e}"))
    }

    /// Like [`Postgres::psql`], but an SQL error is returned, not a panic.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.try_psql_in(DATABASE, sql)
    }

    fn try_psql_in(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(format!("{BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", database, "-c", sql])
            .output()
            .expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Connection settings for the services under test.
    pub fn config(&self) -> PgConfig {
        PgConfig {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            user: "postgres".to_owned(),
            password: Secret::new(""),
            database: DATABASE.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Fast shutdown (what `docker stop` does to PostgreSQL), then start.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Fast shutdown: clients are disconnected, committed data is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, "-INT");
        }
    }

    /// Starts a server stopped with `stop`.
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// The data directory (`PGDATA`), e.g. to read its WAL with pg_waldump.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, "-QUIT");
        }
    }
}

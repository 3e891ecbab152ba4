//! Fault injection for the fault tests: a private PostgreSQL cluster the test may stop, start,
//! pause (`SIGSTOP`) and resume, and a small tmpfs the test may fill. Both
//! need root (the CI machine runs as root); each is torn down when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/N/bin).
fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (scripts/setup installs them)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let v = versions.last().expect("a PostgreSQL version");
    PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/{tool}"))
}

/// A PostgreSQL cluster of the test's own, on a free loopback port, run as `postgres`.
pub struct PrivatePg {
    dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
}

impl PrivatePg {
    pub fn start() -> PrivatePg {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("chown").args(["postgres:postgres"]).arg(dir.path()));
        let port = super::free_port();
        let pg = PrivatePg {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            port,
        };
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(pg.data()));
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(args));
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        self.ctl(&["-w", "-t", "30", "start"]);
    }

    /// Stops at once, as a crash or an operator's `pg_ctl stop -m immediate` would.
    pub fn stop(&self) {
        self.ctl(&["-w", "-m", "immediate", "stop"]);
    }

    /// The postmaster and every backend of this cluster.
    fn pids(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid")).expect("cluster running");
        let master = pidfile.lines().next().unwrap().trim().to_string();
        let children = Command::new("pgrep").args(["-P", &master]).output().unwrap();
        let mut pids = vec![master];
        pids.extend(String::from_utf8_lossy(&children.stdout).lines().map(str::to_string));
        pids
    }

    /// Freezes every process of the cluster: connections stay open, nothing answers.
    pub fn pause(&self) {
        run(Command::new("kill").arg("-STOP").args(self.pids()));
    }

    pub fn resume(&self) {
        run(Command::new("kill").arg("-CONT").args(self.pids()));
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = Command::new("kill").arg("-CONT").args(self.pids()).status();
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// A tmpfs of `size_kib` mounted on a fresh directory (needs root).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_kib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(dir.path()));
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system to the last byte; returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.path().join("filler");
        let mut f = std::fs::File::create(&p).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a server still holding files open must not make the unmount fail.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        std::thread::sleep(Duration::from_millis(10));
    }
}

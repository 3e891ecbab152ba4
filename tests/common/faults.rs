//! Fault injection for the fault tests: a private PostgreSQL cluster the test may stop, start,
//! pause (`SIGSTOP`) and resume, a small tmpfs the test may fill, and a small ext4 file system
//! the test may turn read-only under a running server. All need root (the CI machine runs as
//! root); each is torn down when dropped.

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

/// A small ext4 file system in an image file on a loop device, mounted `errors=remount-ro`. A
/// file-system error reported to the kernel (`/sys/fs/ext4/<dev>/trigger_fs_error`) turns it
/// read-only under whoever is writing, as a failing disk does; only an unmount, `e2fsck` and a
/// new mount make it writable again.
pub struct Ext4 {
    dir: tempfile::TempDir,
    dev: String,
}

impl Ext4 {
    pub fn mount(size_mib: u64) -> Ext4 {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        std::fs::File::create(&image).unwrap().set_len(size_mib << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let fs = Ext4 { dir, dev };
        fs.mount_again();
        fs
    }

    fn mount_again(&self) {
        run(Command::new("mount")
            .args(["-o", "errors=remount-ro", &self.dev])
            .arg(self.path()));
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Reports an error to the kernel: the file system turns read-only at once.
    pub fn turn_read_only(&self) {
        let name = Path::new(&self.dev).file_name().unwrap().to_str().unwrap().to_string();
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "1").unwrap();
    }

    /// Unmounts, repairs and mounts the file system again, writable (nothing may hold it open).
    pub fn repair(&self) {
        run(Command::new("umount").arg(self.path()));
        // 0: clean, 1: errors corrected.
        let st = Command::new("e2fsck").args(["-f", "-y", &self.dev]).output().unwrap();
        assert!(
            matches!(st.status.code(), Some(0) | Some(1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&st.stdout)
        );
        self.mount_again();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

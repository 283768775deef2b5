//! A small disk of a test's own: a tmpfs of a few hundred KiB, so "no space left on device"
//! comes from the real kernel, not from a double. Mounting needs root, which the test suite
//! has (`scripts/test.sh` runs as root); a test that cannot mount one fails and says so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::run_ok;

/// A tmpfs mounted on a temp dir, unmounted when dropped (lazily, so a file still open there
/// does not keep it mounted).
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts `bytes` of tmpfs, writable by every user (a Postgres tablespace is written by
    /// the server's own user).
    pub fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temp dir");
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0777")])
                .arg("tmpfs")
                .arg(dir.path()),
            &format!(
                "mounting a tmpfs on {} (this test needs root, as scripts/test.sh has)",
                dir.path().display()
            ),
        );
        SmallDisk { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every byte still free with a file of its own, so the next write that needs a new
    /// block fails with `ENOSPC`. Returns the file, to remove when space should come back.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("cannot create the filler file");
        let block = [0u8; 4096];
        while file.write_all(&block).is_ok() {}
        // The last block may have been written in part; single bytes take what is left.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

//! The worker's temporary files. A job copies its video to a local file for ffmpeg, in a
//! directory removed when the job ends; a worker killed mid-job (`kill -9`, the OOM killer)
//! cannot remove it, and twenty kills left twenty videos on the disk.
//!
//! So every worker process works in a directory of its own, `<root>/w-<uuid>/`, and holds an
//! exclusive lock (`flock`) on it for as long as it runs. The kernel drops that lock when the
//! process dies, however it dies: at start a worker removes every `w-*` directory under the
//! root whose lock it can take, and nothing else. Several workers may share one root (one
//! machine, one volume): a live worker's directory stays locked, so no other worker touches
//! it. A directory is locked under a temporary name (`.new-<uuid>`) and then renamed, so a
//! sweep never finds a worker's directory before its lock.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Prefix of a live (or dead) worker's directory.
const OWNED: &str = "w-";
/// Prefix of a directory being set up (locked, not yet renamed).
const NEW: &str = ".new-";

/// This worker's own directory under the temporary root, locked while it lives; removed when
/// dropped (a clean exit).
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    /// Holds the lock: open for as long as the worker runs.
    _lock: File,
}

impl Scratch {
    /// Creates the root if needed, removes what dead workers left in it, and takes a
    /// directory of this worker's own.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let swept = sweep(root);
        if swept > 0 {
            tracing::info!(
                path = %root.display(),
                removed = swept,
                "removed the temporary files of workers that are gone"
            );
        }
        // A sweep by another worker starting at this instant may take and remove a directory
        // between its creation and its lock: then try another name.
        let mut last_error = None;
        for _ in 0..3 {
            match claim(root) {
                Ok(scratch) => return Ok(scratch),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no temporary directory")))
    }

    /// The directory this worker's jobs work in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh directory for one job, removed when dropped.
    pub fn job_dir(&self) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("job-")
            .tempdir_in(&self.dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates, locks and names a directory of this worker's own.
fn claim(root: &Path) -> io::Result<Scratch> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let new = root.join(format!("{NEW}{id}"));
    std::fs::create_dir(&new)?;
    let lock = File::open(&new)?;
    if lock.try_lock().is_err() {
        // Taken by a sweep that is about to remove it.
        return Err(io::Error::other("a new temporary directory was taken"));
    }
    let dir = root.join(format!("{OWNED}{id}"));
    std::fs::rename(&new, &dir)?;
    Ok(Scratch { dir, _lock: lock })
}

/// Removes the directories of dead workers under `root` (those whose lock can be taken);
/// returns how many. Errors are skipped: a directory that cannot be read or removed now is
/// tried again at the next start.
fn sweep(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(OWNED) || name.starts_with(NEW)) {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(handle) = File::open(&path) else {
            continue;
        };
        // Held by a live worker: leave it.
        if handle.try_lock().is_err() {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A live worker's directory survives another worker's start; a dead one's goes, with its
    /// files; what is not a worker's directory is left alone.
    #[test]
    fn a_start_removes_only_the_directories_of_dead_workers() {
        let root = tempfile::tempdir().unwrap();
        let live = Scratch::open(root.path()).unwrap();
        let job = live.job_dir().unwrap();
        std::fs::write(job.path().join("input"), b"video").unwrap();

        // A dead worker: its directory and a job's files, no lock (as after `kill -9`).
        let dead = root.path().join(format!("{OWNED}0123"));
        std::fs::create_dir_all(dead.join("job-x")).unwrap();
        std::fs::write(dead.join("job-x").join("input"), b"video").unwrap();
        // One that died while setting up.
        std::fs::create_dir(root.path().join(format!("{NEW}4567"))).unwrap();
        // Not a worker's: someone else's file under the root.
        std::fs::write(root.path().join("notes.txt"), b"keep").unwrap();

        let second = Scratch::open(root.path()).unwrap();
        assert!(
            job.path().join("input").exists(),
            "a live worker's job file"
        );
        assert!(!dead.exists(), "a dead worker's directory");
        let mut expected = vec![
            "notes.txt".to_owned(),
            live.dir()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            second
                .dir()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ];
        expected.sort();
        assert_eq!(entries(root.path()), expected);

        // A clean exit removes the worker's own directory.
        drop(job);
        let dir = live.dir().to_owned();
        drop(live);
        assert!(!dir.exists());
        assert!(second.dir().exists());
    }
}

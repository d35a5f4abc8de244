//! A small tmpfs mounted over a test's data directory, to fill up for real: the server's writes
//! then fail with `ENOSPC`, as on a full disk. Mounting takes `CAP_SYS_ADMIN`; without it the
//! test is skipped, saying why.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filler file's name.
const FILLER: &str = "filler";

/// A mounted tmpfs, unmounted when dropped.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount` syntax: `8m`) over `dir`, or `None` after saying why the
    /// test is skipped.
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self {
                path: dir.to_owned(),
            }),
            Ok(output) => {
                let why = String::from_utf8_lossy(&output.stderr);
                eprintln!("SKIPPED: cannot mount a tmpfs: {}", why.trim());
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount: {error}");
                None
            }
        }
    }

    /// Takes every free byte with a file: the disk is full.
    pub fn fill(&self) {
        let mut filler = std::fs::File::create(self.path.join(FILLER)).expect("filler created");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // Whatever a partial last chunk left (less than 64 KiB) goes too.
        while filler.write(&[0]).is_ok_and(|n| n == 1) {}
    }

    /// Frees what [`SmallDisk::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.path.join(FILLER)).expect("filler removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

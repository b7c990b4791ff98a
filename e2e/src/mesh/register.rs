//! Registration with the local Prometheus through file-based service discovery: a JSON file in
//! the targets directory that names the `/metrics` address, present exactly while the simulator
//! runs.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The `job` label Prometheus gives the simulator's series.
pub const JOB: &str = "mesh-sim";

/// A registered target; dropping it removes the file, so even a panicking test unregisters.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
    removed: bool,
}

impl Registration {
    /// Writes `<dir>/mesh-sim-<port>.json` naming `addr`.
    ///
    /// The file is written under a name Prometheus ignores and renamed into place, so Prometheus
    /// never reads half a file.
    pub fn create(dir: &Path, addr: SocketAddr) -> io::Result<Self> {
        let port = addr.port();
        let path = dir.join(format!("mesh-sim-{port}.json"));
        let partial = dir.join(format!(".mesh-sim-{port}.json.partial"));
        let targets = serde_json::json!([{
            "targets": [addr.to_string()],
            "labels": { "job": JOB },
        }]);
        std::fs::write(&partial, format!("{targets:#}\n"))?;
        std::fs::rename(&partial, &path)?;
        Ok(Self {
            path,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file now, reporting a failure the drop would have to swallow.
    pub fn remove(mut self) -> io::Result<()> {
        // The drop must not try again (and perhaps remove a successor's file with the same port).
        self.removed = true;
        std::fs::remove_file(&self.path)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.removed {
            // Nothing to report to: a file that is already gone is the state we want anyway.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mesh-sim-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_a_file_sd_target_and_removes_it() {
        let dir = scratch_dir("register");
        let registration = Registration::create(&dir, "127.0.0.1:15123".parse().unwrap()).unwrap();
        let path = registration.path().to_owned();
        assert_eq!(path, dir.join("mesh-sim-15123.json"));
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written[0]["targets"][0], "127.0.0.1:15123");
        assert_eq!(written[0]["labels"]["job"], JOB);
        registration.remove().unwrap();
        assert!(!path.exists());
        drop(Registration::create(&dir, "127.0.0.1:15124".parse().unwrap()).unwrap());
        assert!(
            !dir.join("mesh-sim-15124.json").exists(),
            "dropping unregisters"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

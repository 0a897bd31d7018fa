//! NVIDIA MPS control: start the MPS control daemon when the worker starts (if configured and
//! the GPUs are real) and ask it to quit when the worker stops. Per-sandbox SM shares and memory
//! limits are environment variables ([`super::sandbox_env`]: `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`,
//! `CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`, `CUDA_MPS_PIPE_DIRECTORY`); exclusive-process compute
//! mode is [`super::DeviceBackend::set_exclusive_process`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running MPS control daemon that this worker started.
pub struct MpsDaemon {
    program: PathBuf,
    pipe_dir: PathBuf,
}

impl MpsDaemon {
    /// Starts `nvidia-cuda-mps-control -d` (or `program`) with its pipe and log directories under
    /// `dir`.
    pub fn start(program: PathBuf, dir: PathBuf) -> std::io::Result<MpsDaemon> {
        let pipe_dir = Self::pipe_dir_under(&dir);
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&pipe_dir)?;
        std::fs::create_dir_all(&log_dir)?;
        let status = Command::new(&program)
            .arg("-d")
            .env("CUDA_MPS_PIPE_DIRECTORY", &pipe_dir)
            .env("CUDA_MPS_LOG_DIRECTORY", &log_dir)
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "{} -d exited with {status}",
                program.display()
            )));
        }
        Ok(MpsDaemon { program, pipe_dir })
    }

    /// The pipe directory of a daemon started with `dir`, for sandboxes to reach it.
    pub fn pipe_dir_under(dir: &Path) -> PathBuf {
        dir.join("pipe")
    }

    /// The pipe directory sandboxes must see (`CUDA_MPS_PIPE_DIRECTORY`).
    pub fn pipe_dir(&self) -> &PathBuf {
        &self.pipe_dir
    }

    /// Asks the daemon to quit.
    pub fn stop(&self) -> std::io::Result<()> {
        let mut child = Command::new(&self.program)
            .env("CUDA_MPS_PIPE_DIRECTORY", &self.pipe_dir)
            .stdin(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"quit\n")?;
        }
        child.wait().map(|_| ())
    }
}

impl Drop for MpsDaemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake control program records how it was called.
    #[test]
    fn starts_and_stops_the_control_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("mps-control");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$@ pipe=$CUDA_MPS_PIPE_DIRECTORY\" >> {0}\ncat >> {0}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mps = MpsDaemon::start(fake.clone(), dir.path().join("mps")).unwrap();
        assert!(mps.pipe_dir().is_dir());
        drop(mps);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(calls.starts_with("-d pipe="), "{calls}");
        assert!(calls.contains("quit"), "{calls}");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            MpsDaemon::start(PathBuf::from("/no/such/mps-control"), dir.path().into()).is_err()
        );
    }
}

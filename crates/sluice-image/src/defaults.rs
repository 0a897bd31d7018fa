//! Run defaults from an image config: command = `Entrypoint` + `Cmd` (a spec's own `command`
//! replaces both, like `docker run --entrypoint`), working directory = `WorkingDir` (`/` if unset),
//! environment = the image's `Env` with the caller's variables laid over it, user = `User` as
//! numeric ids — names looked up in the image's own `/etc/passwd` and `/etc/group`, read beneath
//! the root (a symlinked `/etc/passwd` cannot make it read the host's).

use crate::error::{ImageError, IoContext, Result};
use crate::spec::ImageConfig;
use crate::store::blobs::read_limited;
use crate::unpack::resolve::open_file_beneath;
use serde::Serialize;
use std::path::Path;

/// Numeric user and group ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UserIds {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// How to run an image's default process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunDefaults {
    /// `Entrypoint` followed by `Cmd` (may be empty: then the spec must give a command).
    pub command: Vec<String>,
    /// The working directory (absolute).
    pub workdir: String,
    /// The image's environment, in its order.
    pub env: Vec<(String, String)>,
    /// The image's user, if it names one.
    pub user: Option<UserIds>,
}

impl RunDefaults {
    /// The defaults of `config`; a user name is resolved in the image root at `root`.
    pub fn from_config(config: &ImageConfig, root: &Path) -> Result<RunDefaults> {
        let mut command = config.entrypoint.clone().unwrap_or_default();
        command.extend(config.cmd.clone().unwrap_or_default());
        let workdir = match config.working_dir.as_deref() {
            None | Some("") => "/".to_string(),
            Some(dir) if dir.starts_with('/') => dir.to_string(),
            Some(dir) => format!("/{dir}"),
        };
        let mut env = Vec::new();
        for entry in config.env.iter().flatten() {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| ImageError::InvalidField {
                    field: "config.Env",
                    message: format!("{entry:?} is not NAME=value"),
                })?;
            env.push((name.to_string(), value.to_string()));
        }
        let user = match config.user.as_deref() {
            None | Some("") => None,
            Some(user) => Some(resolve_user(user, root)?),
        };
        Ok(RunDefaults {
            command,
            workdir,
            env,
            user,
        })
    }

    /// The command to run: the spec's `command` when it gives one (it replaces `Entrypoint` and
    /// `Cmd`), else the image's.
    pub fn command(&self, spec_command: Option<&[String]>) -> Result<Vec<String>> {
        let command = match spec_command {
            Some(command) if !command.is_empty() => command.to_vec(),
            _ => self.command.clone(),
        };
        if command.is_empty() {
            return Err(ImageError::NoCommand);
        }
        Ok(command)
    }

    /// The image's environment with `overrides` laid over it (same name: the override wins and
    /// keeps the image's position; new names follow in the caller's order).
    pub fn env_with<'a>(
        &self,
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        for (name, value) in overrides {
            match env.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.to_string(),
                None => env.push((name.to_string(), value.to_string())),
            }
        }
        env
    }
}

/// Resolves `uid[:gid]` or `name[:group]` (mixed too) against the image's account files.
fn resolve_user(user: &str, root: &Path) -> Result<UserIds> {
    let bad = |reason: String| ImageError::InvalidUser {
        user: user.to_string(),
        reason,
    };
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let passwd = account_file(root, "passwd")?;
    let entry = passwd.as_deref().and_then(|p| {
        p.lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| {
                f.len() >= 4 && (f[0] == name || (name.parse::<u32>().is_ok() && f[2] == name))
            })
    });
    let uid = match name.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry
            .as_ref()
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| bad(format!("no user {name:?} in the image's /etc/passwd")))?,
    };
    let gid = match group {
        None | Some("") => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = account_file(root, "group")?;
                groups
                    .as_deref()
                    .and_then(|g| {
                        g.lines()
                            .map(|l| l.split(':').collect::<Vec<_>>())
                            .find(|f| f.len() >= 3 && f[0] == group)
                            .and_then(|f| f[2].parse().ok())
                    })
                    .ok_or_else(|| bad(format!("no group {group:?} in the image's /etc/group")))?
            }
        },
    };
    Ok(UserIds { uid, gid })
}

/// `/etc/<name>` of the image, if it has one.
fn account_file(root: &Path, name: &str) -> Result<Option<String>> {
    let flags =
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags, rustix::fs::Mode::empty())
        .ctx(|| format!("open root {}", root.display()))?;
    let path = [b"etc".to_vec(), name.as_bytes().to_vec()];
    let Some(file) = open_file_beneath(std::os::fd::AsFd::as_fd(&root_fd), &path)
        .ctx(|| format!("open /etc/{name} of the image"))?
    else {
        return Ok(None);
    };
    let bytes = read_limited(file, 4 << 20, &format!("/etc/{name} of the image"))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_accounts() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        tmp
    }

    fn config(user: &str) -> ImageConfig {
        ImageConfig {
            user: Some(user.to_string()),
            env: Some(vec!["PATH=/usr/bin".into(), "A=1=2".into()]),
            entrypoint: Some(vec!["/bin/app".into()]),
            cmd: Some(vec!["--serve".into()]),
            working_dir: Some("/srv".into()),
        }
    }

    #[test]
    fn defaults_come_from_the_config() {
        let root = root_with_accounts();
        let d = RunDefaults::from_config(&config("app"), root.path()).unwrap();
        assert_eq!(d.command, ["/bin/app", "--serve"]);
        assert_eq!(d.workdir, "/srv");
        assert_eq!(
            d.env,
            [
                ("PATH".into(), "/usr/bin".into()),
                ("A".into(), "1=2".into())
            ]
        );
        assert_eq!(
            d.user,
            Some(UserIds {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(d.command(None).unwrap(), ["/bin/app", "--serve"]);
        let own = ["python3".to_string(), "main.py".to_string()];
        assert_eq!(d.command(Some(&own)).unwrap(), own);
        let env = d.env_with([("PATH", "/opt/bin"), ("NEW", "x")]);
        assert_eq!(env[0], ("PATH".into(), "/opt/bin".into()));
        assert_eq!(env[2], ("NEW".into(), "x".into()));
    }

    #[test]
    fn users_numeric_named_and_mixed() {
        let root = root_with_accounts();
        let ids = |u: &str| RunDefaults::from_config(&config(u), root.path()).map(|d| d.user);
        assert_eq!(
            ids("1000").unwrap(),
            Some(UserIds {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(ids("4242").unwrap(), Some(UserIds { uid: 4242, gid: 0 }));
        assert_eq!(ids("4242:7").unwrap(), Some(UserIds { uid: 4242, gid: 7 }));
        assert_eq!(
            ids("app:staff").unwrap(),
            Some(UserIds { uid: 1000, gid: 50 })
        );
        assert_eq!(ids("0:staff").unwrap(), Some(UserIds { uid: 0, gid: 50 }));
        assert_eq!(ids("").unwrap(), None);
        assert!(ids("nobody").unwrap_err().to_string().contains("nobody"));
        assert!(ids("app:nogroup")
            .unwrap_err()
            .to_string()
            .contains("nogroup"));
    }

    #[test]
    fn a_symlinked_passwd_is_read_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/group", root.path().join("etc/passwd")).unwrap();
        // The host's /etc/group has a `root` line; the image has no /etc/group at all.
        let err = RunDefaults::from_config(&config("root"), root.path()).unwrap_err();
        assert!(matches!(err, ImageError::InvalidUser { .. }), "{err}");
    }

    #[test]
    fn bad_env_and_missing_command() {
        let root = root_with_accounts();
        let mut c = config("0");
        c.env = Some(vec!["NOEQUALS".into()]);
        assert!(RunDefaults::from_config(&c, root.path())
            .unwrap_err()
            .to_string()
            .contains("config.Env"));
        let empty = RunDefaults::from_config(&ImageConfig::default(), root.path()).unwrap();
        assert!(matches!(empty.command(None), Err(ImageError::NoCommand)));
        assert_eq!(empty.workdir, "/");
    }
}

//! File modes: the data dir holds every log line, webhook secrets and credentials, so only its
//! owner may read it (directories 0700, files 0600, new files through a 0077 umask); a config
//! file that holds secrets must not be readable by other users; files opslog writes for people
//! (exports) are 0600.
//!
//! On start opslog tightens what it owns in its data dir (and logs that it did) and refuses to
//! start, naming the fix, when something there is readable by others and belongs to another
//! user.
//!
//! Must not: follow symlinks out of the data dir, or loosen a mode.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The bits of a mode that let anyone but the owner in.
const OTHERS: u32 = 0o077;

/// Why the data dir or the config file cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    #[error("cannot create the data dir {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Inspect { path: PathBuf, source: io::Error },
    #[error(
        "{path} (in the data dir) is readable by other users (mode {mode:04o}) and belongs to uid {owner}, \
         not to uid {me} that opslog runs as, so opslog cannot make it private. Fix: run \
         `chmod -R go-rwx {data_dir}` as its owner, or `chown -R {me} {data_dir}`"
    )]
    NotOwned {
        path: PathBuf,
        data_dir: PathBuf,
        mode: u32,
        owner: u32,
        me: u32,
    },
    #[error("cannot make {path} private (mode {mode:04o}): {source}. Fix: run `chmod -R go-rwx {data_dir}`")]
    Tighten {
        path: PathBuf,
        data_dir: PathBuf,
        mode: u32,
        source: io::Error,
    },
    #[error(
        "the config file {path} holds secrets ({what}) and other users can read it (mode {mode:04o}). \
         Fix: `chmod 600 {path}` (or `chmod 640` with the group opslog runs as)"
    )]
    ConfigReadable {
        path: PathBuf,
        what: String,
        mode: u32,
    },
}

/// Files and directories opslog creates from now on are its owner's alone. Process-wide: the
/// daemon creates nothing meant for others.
pub fn private_umask() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Creates the data dir 0700, or makes an existing one private: every directory and file in
/// it that others could read is tightened when opslog's user owns it. Returns the paths it
/// tightened (already done on return). On error nothing past the failing entry was changed.
pub fn prepare_data_dir(data_dir: &Path) -> Result<Vec<PathBuf>, PermissionError> {
    if !data_dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| PermissionError::Create {
                path: data_dir.to_owned(),
                source,
            })?;
        return Ok(Vec::new());
    }
    let me = effective_uid();
    let mut tightened = Vec::new();
    let mut pending = vec![data_dir.to_owned()];
    while let Some(path) = pending.pop() {
        let inspect = |source| PermissionError::Inspect {
            path: path.clone(),
            source,
        };
        let metadata = std::fs::symlink_metadata(&path).map_err(inspect)?;
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.mode() & 0o7777;
        if mode & OTHERS != 0 {
            if metadata.uid() != me {
                return Err(PermissionError::NotOwned {
                    path,
                    data_dir: data_dir.to_owned(),
                    mode,
                    owner: metadata.uid(),
                    me,
                });
            }
            std::fs::set_permissions(&path, Permissions::from_mode(mode & !OTHERS)).map_err(
                |source| PermissionError::Tighten {
                    path: path.clone(),
                    data_dir: data_dir.to_owned(),
                    mode,
                    source,
                },
            )?;
            tightened.push(path.clone());
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(inspect)? {
                pending.push(entry.map_err(inspect)?.path());
            }
        }
    }
    Ok(tightened)
}

/// Refuses a config file that holds secrets (`what` names them; empty: none) when a user other
/// than opslog's can read it: world-readable, or group-readable by a group opslog does not run
/// as (`root:opslog 0640` is fine).
pub fn check_config_file(path: &Path, what: &[&str]) -> Result<(), PermissionError> {
    if what.is_empty() {
        return Ok(());
    }
    let metadata = std::fs::metadata(path).map_err(|source| PermissionError::Inspect {
        path: path.to_owned(),
        source,
    })?;
    let mode = metadata.mode() & 0o7777;
    let world = mode & 0o004 != 0;
    let foreign_group = mode & 0o040 != 0 && metadata.gid() != effective_gid();
    if world || foreign_group {
        return Err(PermissionError::ConfigReadable {
            path: path.to_owned(),
            what: what.join(", "),
            mode,
        });
    }
    Ok(())
}

/// Creates (or truncates) `path` as a file only its owner can read or write, also when it
/// existed with a wider mode.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private_and_an_open_one_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/data");
        assert!(prepare_data_dir(&fresh).unwrap().is_empty());
        assert_eq!(mode(&fresh), 0o700);

        let open = root.path().join("open");
        std::fs::create_dir_all(open.join("index")).unwrap();
        std::fs::write(open.join("opslog.redb"), b"x").unwrap();
        std::fs::write(open.join("index/meta.json"), b"{}").unwrap();
        for (path, m) in [
            (open.clone(), 0o755),
            (open.join("index"), 0o775),
            (open.join("opslog.redb"), 0o644),
            (open.join("index/meta.json"), 0o666),
        ] {
            std::fs::set_permissions(&path, Permissions::from_mode(m)).unwrap();
        }
        let tightened = prepare_data_dir(&open).unwrap();
        assert_eq!(tightened.len(), 4, "{tightened:?}");
        assert_eq!(mode(&open), 0o700);
        assert_eq!(mode(&open.join("index")), 0o700);
        assert_eq!(mode(&open.join("opslog.redb")), 0o600);
        assert_eq!(mode(&open.join("index/meta.json")), 0o600);
        assert!(prepare_data_dir(&open).unwrap().is_empty(), "nothing left");
    }

    #[test]
    fn config_files_with_secrets_must_not_be_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opslog.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        assert!(check_config_file(&path, &[]).is_ok(), "no secrets, no rule");
        let err = check_config_file(&path, &["server.admin_tokens"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.admin_tokens")
                && err.contains("0644")
                && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        assert!(
            check_config_file(&path, &["server.admin_tokens"]).is_ok(),
            "the group opslog runs as may read it"
        );
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        assert!(check_config_file(&path, &["server.admin_tokens"]).is_ok());
    }

    #[test]
    fn private_files_are_0600_even_over_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.ndjson");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        drop(create_private_file(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}

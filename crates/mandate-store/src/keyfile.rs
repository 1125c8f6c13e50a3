//! Private key files: written with mode 0600 (atomically, via a temporary file), and
//! refused on read if anyone but the owner can read them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::StoreError;

fn io(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

/// Writes `contents` to `path` with mode 0600, replacing nothing that exists.
pub fn write_private(path: &Path, contents: &str) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("create {}", tmp.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(io(format!("write {}", tmp.display())))?;
    f.sync_all()
        .map_err(io(format!("sync {}", tmp.display())))?;
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Conflict(format!(
            "{} already exists",
            path.display()
        )));
    }
    fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))?;
    Ok(())
}

/// Reads a private file, refusing one that group or others can read.
pub fn read_private(path: &Path) -> Result<String, StoreError> {
    let meta = fs::metadata(path).map_err(io(format!("read {}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::Conflict(format!(
            "{} is readable by others (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    fs::read_to_string(path).map_err(io(format!("read {}", path.display())))
}

/// Removes a private file (a retired signing key); a missing file is fine.
pub fn remove_private(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_0600_and_refuses_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        write_private(&p, "secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private(&p).unwrap(), "secret");
        assert!(write_private(&p, "again").is_err());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(&p).is_err());
    }
}

//! Replacing a file so that readers and crashes see the old file or the new
//! one, never a part of either: write `NAME.tmp` in the same directory,
//! sync it, rename it over `NAME`, sync the directory.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Replace `path` by what `write` writes, with permissions `mode` (set
/// explicitly, whatever the umask). On any error the old file is left as
/// it was and the temporary file is removed.
pub fn write_atomically(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let temporary = temporary_path(path)?;
    let result = write_then_rename(path, &temporary, mode, write);
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// `NAME.tmp` beside `NAME`: a fixed name, so a crash mid-write leaves one
/// stray file that the next write replaces, not one per attempt.
fn temporary_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut temporary = name.to_os_string();
    temporary.push(".tmp");
    Ok(path.with_file_name(temporary))
}

fn write_then_rename(
    path: &Path,
    temporary: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", temporary.display()))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    write(&mut out)?;
    let file = out
        .into_inner()
        .map_err(|err| err.into_error())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", temporary.display()))?;
    drop(file);
    fs::rename(temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    // The rename itself is durable only once the directory is synced.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", directory.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_or_keeps_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomically(&path, 0o640, |out| Ok(out.write_all(b"one")?)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);

        let err = write_atomically(&path, 0o640, |out| {
            out.write_all(b"half")?;
            anyhow::bail!("writer failed")
        })
        .unwrap_err();
        assert!(err.to_string().contains("writer failed"));
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(!dir.path().join("out.txt.tmp").exists());

        let missing = dir.path().join("no/such/dir/out.txt");
        let err = write_atomically(&missing, 0o600, |_| Ok(())).unwrap_err();
        assert!(format!("{err:#}").contains("cannot create"), "{err:#}");
    }
}

//! Writing results: files atomically, stdout tolerant of a closed pipe.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temp file in the same directory and
/// a rename, so an existing file is replaced whole or not at all.
pub fn write_atomic(path: &Path, contents: &[u8], executable: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".hacompile-").tempfile_in(&dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if executable { 0o755 } else { 0o644 };
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write_atomic`] for a file being rewritten in place: keeps its mode.
pub fn write_atomic_keep_mode(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions();
    write_atomic(path, contents, false)?;
    std::fs::set_permissions(path, mode)
}

/// Writes to stdout. A reader that went away (`| head`) is not an error.
pub fn stdout(contents: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(contents).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

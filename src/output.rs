//! Writing results: a set of files replaced whole, stdout tolerant of a
//! closed pipe.
//!
//! A build writes several files that belong together (the stack names the
//! others by content hash), and pin may rewrite several stacks. A failure or
//! a kill must leave the old set or the new set, never a mix, so:
//!
//! - [`replace_dir`] (build): the new set is staged in a directory beside the
//!   target, on the same filesystem, with every other entry of the target
//!   carried over (hard links; subdirectories recreated), and the two are
//!   swapped by one `renameat2(RENAME_EXCHANGE)`. The old directory is then
//!   removed. Where a swap cannot be sound (see [`replace_dir`]) it falls back
//!   to [`write_files`].
//! - [`write_files`] (pin, the lock, the fallback): every new file is written
//!   and synced as a temp file beside its target first; only when all are
//!   staged are they renamed over their targets, so a write error changes
//!   nothing.
//!
//! Every temp file and staging directory is named `.hacompile-*` and holds an
//! exclusive `flock` while its writer lives; the kernel drops the lock when
//! the writer dies, even by SIGKILL. Each run removes the unlocked ones it
//! finds where it writes, so what a killed run left goes at the next one,
//! while a concurrent run's files are left alone.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The prefix of every temp file and staging directory hacompile creates.
pub const TEMP_PREFIX: &str = ".hacompile-";

/// A directory holding more entries than this (recursively) is not carried
/// over into a staged copy (it is not an output directory; `-o ~`): the set
/// is then written file by file.
const MAX_CARRIED_ENTRIES: usize = 10_000;

/// Why an output could not be written. Nothing was changed when this is returned,
/// unless the message says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {}: {source}", shown(path))]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write {}: a directory is in its place", shown(path))]
    DirectoryInTheWay { path: PathBuf },
    #[error("cannot write into {}: it is not a directory", shown(path))]
    NotADirectory { path: PathBuf },
    /// A rename failed after others had succeeded (every byte was already
    /// written, so this takes a change on disk between two renames).
    #[error("cannot write {}: {source}; already replaced: {}", shown(path), written.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", "))]
    Incomplete { path: PathBuf, source: io::Error, written: Vec<PathBuf> },
}

impl WriteError {
    pub fn help(&self) -> &'static str {
        match self {
            WriteError::Io { .. } => "check that the directory exists, is writable and has space; nothing was changed",
            WriteError::DirectoryInTheWay { .. } => {
                "move the directory away (hacompile never deletes one it did not create); nothing was changed"
            }
            WriteError::NotADirectory { .. } => "name a directory, or a path that does not exist yet",
            WriteError::Incomplete { .. } => "build or pin again once the cause is fixed",
        }
    }

    /// Did the failure leave every target as it was?
    pub fn changed_nothing(&self) -> bool {
        !matches!(self, WriteError::Incomplete { .. })
    }

    /// The underlying I/O error, for callers that name the path themselves.
    pub fn into_io(self) -> io::Error {
        match self {
            WriteError::Io { source, .. } | WriteError::Incomplete { source, .. } => source,
            WriteError::DirectoryInTheWay { .. } => {
                io::Error::new(io::ErrorKind::IsADirectory, "a directory is in its place")
            }
            WriteError::NotADirectory { .. } => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }
    }
}

fn shown(path: &Path) -> String {
    hacompile_boundary::text::line(&path.display().to_string()).into_owned()
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.to_path_buf(), source }
}

/// One file of a set.
pub struct NewFile<'a> {
    pub name: &'a str,
    pub contents: &'a [u8],
    pub executable: bool,
}

/// The permissions a replaced file gets.
#[derive(Clone, Copy)]
pub enum Mode {
    /// 0755 for executables, 0644 otherwise.
    New { executable: bool },
    /// The mode of the file being rewritten (pin rewrites a user's file).
    KeepExisting,
}

/// Writes `contents` to `path` through a temp file in the same directory and
/// a rename, so an existing file is replaced whole or not at all.
pub fn write_atomic(path: &Path, contents: &[u8], executable: bool) -> io::Result<()> {
    write_files(&[(path.to_path_buf(), contents, Mode::New { executable })]).map_err(WriteError::into_io)
}

/// Writes a new file at `path` through a synced temp file and a rename that
/// never replaces: a file that appears there meanwhile is kept, and the error
/// is `AlreadyExists`. A reader never sees a half-written file.
pub fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    clean_stale(&dir);
    let mut tmp = locked_temp(&dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode_bits(Mode::New { executable: false }, None)))?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    let _ = sync_dir(&dir);
    Ok(())
}

/// Tries to take the exclusive lock without waiting: `false` if another
/// process holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(unix)]
fn same_inode(path: &Path, file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (fs::symlink_metadata(path)?, file.metadata()?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// A temp file beside `dir`'s targets that holds its lock. A cleaner may
/// remove a new file in the instant before it is locked; then its path no
/// longer leads to it, and another name is tried.
fn locked_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    for _ in 0..8 {
        let tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
        if try_lock(tmp.as_file())? && same_inode(tmp.path(), tmp.as_file()).unwrap_or(false) {
            return Ok(tmp);
        }
    }
    Err(io::Error::other("another process kept removing the temp files created here"))
}

/// Removes the `.hacompile-*` temp files and staging directories in `dir`
/// that no live process holds: what a killed run left behind.
pub fn clean_stale(dir: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        // Only what hacompile creates; a symlink or a FIFO by that name is not ours.
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let path = entry.path();
        let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32;
        let Ok(file) = fs::OpenOptions::new().read(true).custom_flags(flags).open(&path) else { continue };
        if !matches!(try_lock(&file), Ok(true)) {
            continue;
        }
        let _ = if kind.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn mode_bits(mode: Mode, existing: Option<&fs::Metadata>) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match (mode, existing) {
        (Mode::KeepExisting, Some(m)) => m.permissions().mode() & 0o7777,
        (Mode::New { executable: true }, _) => 0o755,
        _ => 0o644,
    }
}

/// Writes every file, or none: each is staged and synced as a temp file
/// beside its target first, and the renames start only when all are staged.
/// A target that is a symlink is followed when its mode is kept (pin rewrites
/// the file a link names); a directory in a target's place is an error.
pub fn write_files(files: &[(PathBuf, &[u8], Mode)]) -> Result<(), WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let mut staged = Vec::with_capacity(files.len());
    for (path, contents, mode) in files {
        let target = match mode {
            Mode::KeepExisting => fs::canonicalize(path).map_err(at(path))?,
            Mode::New { .. } => path.clone(),
        };
        let existing = fs::symlink_metadata(&target).ok();
        if existing.as_ref().is_some_and(fs::Metadata::is_dir) {
            return Err(WriteError::DirectoryInTheWay { path: path.clone() });
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        clean_stale(&dir);
        let mut tmp = locked_temp(&dir).map_err(at(path))?;
        tmp.write_all(contents).map_err(at(path))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode_bits(*mode, existing.as_ref())))
            .map_err(at(path))?;
        tmp.as_file().sync_all().map_err(at(path))?;
        staged.push((tmp, target, dir, path));
    }
    // Every byte is on disk; from here only renames, which need no space.
    let mut dirs = Vec::new();
    let mut written = Vec::new();
    for (tmp, target, dir, path) in staged {
        if let Err(e) = tmp.persist(&target) {
            return Err(if written.is_empty() {
                WriteError::Io { path: path.clone(), source: e.error }
            } else {
                WriteError::Incomplete { path: path.clone(), source: e.error, written }
            });
        }
        written.push(path.clone());
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        let _ = sync_dir(&dir);
    }
    Ok(())
}

/// How [`replace_dir`] wrote the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The directory did not exist: the staged one was renamed into place.
    Created,
    /// The staged directory and the old one were swapped in one step.
    Swapped,
    /// File by file (every file staged first), because a swap could not be sound.
    FileByFile,
}

/// Where a directory really is: through symlinks (the link stays and the
/// directory it names is replaced). A missing directory's parents are created.
fn resolve_dir(dir: &Path) -> Result<PathBuf, WriteError> {
    let mut last = None;
    for _ in 0..3 {
        match fs::canonicalize(dir) {
            Ok(real) if real.is_dir() => return Ok(real),
            Ok(_) => return Err(WriteError::NotADirectory { path: dir.to_path_buf() }),
            // A name there that resolves to nothing: a concurrent run
            // created it in between (two builds into a new directory failed
            // with `cannot write deploy: No such file or directory`), so
            // resolve it again; or a link to nothing, which stays an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(dir).is_ok() => last = Some(e),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = dir.file_name().ok_or_else(|| WriteError::NotADirectory { path: dir.to_path_buf() })?;
                let parent = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                fs::create_dir_all(parent).map_err(at(parent))?;
                return Ok(fs::canonicalize(parent).map_err(at(parent))?.join(name));
            }
            Err(source) => return Err(WriteError::Io { path: dir.to_path_buf(), source }),
        }
    }
    Err(WriteError::Io { path: dir.to_path_buf(), source: last.unwrap_or_else(|| io::ErrorKind::NotFound.into()) })
}

/// A staging directory beside the target; removed on drop unless kept.
struct Stage {
    path: PathBuf,
    /// Holds the lock that tells cleaners the directory is in use.
    _lock: File,
    keep: bool,
}

impl Stage {
    fn create(parent: &Path) -> io::Result<Stage> {
        for _ in 0..8 {
            let path = tempfile::Builder::new().prefix(TEMP_PREFIX).tempdir_in(parent)?.keep();
            // Another run's cleaner may remove it before it is locked: then try another name.
            let Ok(lock) = File::open(&path) else { continue };
            if try_lock(&lock)? && same_inode(&path, &lock).unwrap_or(false) {
                return Ok(Stage { path, _lock: lock, keep: false });
            }
        }
        Err(io::Error::other("another process kept removing the staging directories created here"))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What stops a directory from being carried into the stage.
enum CarryError {
    /// Not sound to stage (too large, another filesystem, a special file):
    /// write file by file instead.
    Unsuitable,
    Write(WriteError),
}

impl From<WriteError> for CarryError {
    fn from(e: WriteError) -> Self {
        CarryError::Write(e)
    }
}

/// Carries every entry of `old` that is not one of `produced` into `stage`:
/// files as hard links (the same inode, so nothing is copied or lost),
/// symlinks recreated, directories recreated with their permissions.
fn carry_over(old: &Path, stage: &Path, produced: &[&str]) -> Result<(), CarryError> {
    use std::os::unix::fs::MetadataExt;
    let device = fs::metadata(old).map_err(|e| WriteError::Io { path: old.to_path_buf(), source: e })?.dev();
    let mut count = 0;
    let mut todo = vec![(old.to_path_buf(), stage.to_path_buf(), true)];
    while let Some((from, to, top)) = todo.pop() {
        for entry in fs::read_dir(&from).map_err(at(&from))? {
            let entry = entry.map_err(at(&from))?;
            let name = entry.file_name();
            let src = entry.path();
            let meta = fs::symlink_metadata(&src).map_err(at(&src))?;
            if top && produced.iter().any(|p| name == *p) {
                if meta.is_dir() {
                    return Err(WriteError::DirectoryInTheWay { path: src }.into());
                }
                continue;
            }
            if top && name.to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            count += 1;
            if count > MAX_CARRIED_ENTRIES || meta.dev() != device {
                return Err(CarryError::Unsuitable);
            }
            let dst = to.join(&name);
            let kind = meta.file_type();
            if kind.is_symlink() {
                let link = fs::read_link(&src).map_err(at(&src))?;
                std::os::unix::fs::symlink(link, &dst).map_err(at(&dst))?;
            } else if kind.is_dir() {
                fs::create_dir(&dst).map_err(at(&dst))?;
                fs::set_permissions(&dst, meta.permissions()).map_err(at(&dst))?;
                todo.push((src, dst, false));
            } else if kind.is_file() {
                fs::hard_link(&src, &dst).map_err(|_| CarryError::Unsuitable)?;
            } else {
                return Err(CarryError::Unsuitable);
            }
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn rename_with(from: &Path, to: &Path, flags: rustix::fs::RenameFlags) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags)?)
}

#[cfg(not(target_os = "linux"))]
fn rename_with(_: &Path, _: &Path, _: rustix::fs::RenameFlags) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Replaces the files of a set in `dir` together: after a failure or a kill
/// the directory holds the old set or the new set, never a mix. Entries of
/// `dir` that are not in the set stay.
///
/// The swap needs the directory's parent to be writable and on the same
/// filesystem, and is not used when the current directory is inside `dir`
/// (the process, and the shell that started it, would be left in the removed
/// old directory), when `dir` holds more than 10,000 entries, another
/// mounted filesystem or special files: then every file is staged beside its
/// target and renamed once all are written, so a write error still changes
/// nothing and only a kill during the renames can leave a mix.
pub fn replace_dir(dir: &Path, files: &[NewFile<'_>]) -> Result<Replaced, WriteError> {
    let target = resolve_dir(dir)?;
    // Two runs creating the directory at once: the one that lost swaps instead.
    for _ in 0..3 {
        match replace_resolved(&target, files) {
            Err(WriteError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other,
        }
    }
    replace_resolved(&target, files)
}

fn replace_resolved(target: &Path, files: &[NewFile<'_>]) -> Result<Replaced, WriteError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let target = target.to_path_buf();
    let file_by_file = || {
        fs::create_dir_all(&target).map_err(at(&target))?;
        let list: Vec<(PathBuf, &[u8], Mode)> =
            files.iter().map(|f| (target.join(f.name), f.contents, Mode::New { executable: f.executable })).collect();
        write_files(&list).map(|()| Replaced::FileByFile)
    };
    let Some(parent) = target.parent().filter(|_| target.file_name().is_some()) else {
        return file_by_file();
    };
    let exists = target.exists();
    if exists {
        clean_stale(&target);
    }
    let cwd_inside =
        std::env::current_dir().ok().and_then(|c| fs::canonicalize(c).ok()).is_some_and(|c| c.starts_with(&target));
    let mount_point = exists
        && match (fs::metadata(&target), fs::metadata(parent)) {
            (Ok(t), Ok(p)) => t.dev() != p.dev(),
            _ => true,
        };
    if cwd_inside || mount_point {
        return file_by_file();
    }
    clean_stale(parent);
    let mut stage = match Stage::create(parent) {
        Ok(s) => s,
        // A read-only or foreign parent: the directory itself may still be writable.
        Err(_) => return file_by_file(),
    };
    for f in files {
        let path = stage.path.join(f.name);
        let mut out = File::create_new(&path).map_err(at(&target.join(f.name)))?;
        out.write_all(f.contents).map_err(at(&target.join(f.name)))?;
        out.set_permissions(fs::Permissions::from_mode(mode_bits(Mode::New { executable: f.executable }, None)))
            .map_err(at(&target.join(f.name)))?;
        out.sync_all().map_err(at(&target.join(f.name)))?;
    }
    if exists {
        let produced: Vec<&str> = files.iter().map(|f| f.name).collect();
        match carry_over(&target, &stage.path, &produced) {
            Ok(()) => {}
            Err(CarryError::Write(e)) => return Err(e),
            Err(CarryError::Unsuitable) => {
                drop(stage);
                return file_by_file();
            }
        }
        let mode = fs::metadata(&target).map_err(at(&target))?.permissions();
        fs::set_permissions(&stage.path, mode).map_err(at(&target))?;
    } else {
        // As `mkdir` would make it.
        let _ = fs::set_permissions(&stage.path, fs::Permissions::from_mode(0o755));
    }
    sync_dir(&stage.path).map_err(at(&target))?;

    let how = if exists {
        match rename_with(&stage.path, &target, rustix::fs::RenameFlags::EXCHANGE) {
            Ok(()) => Replaced::Swapped,
            Err(e) if cannot_exchange(&e) => {
                drop(stage);
                return file_by_file();
            }
            Err(source) => return Err(WriteError::Io { path: target, source }),
        }
    } else {
        rename_with(&stage.path, &target, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(|source| WriteError::Io { path: target.clone(), source })?;
        stage.keep = true;
        Replaced::Created
    };
    let _ = sync_dir(parent);
    if how == Replaced::Swapped {
        // The stage's name now holds the old directory. Lock it against
        // concurrent cleaners, move over anything created in it since it was
        // carried over, then remove it.
        let old = stage.path.clone();
        if let Ok(lock) = File::open(&old) {
            let _ = try_lock(&lock);
            stage._lock = lock;
        }
        if let Ok(entries) = fs::read_dir(&old) {
            for entry in entries.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)) {
                let _ = rename_with(&entry.path(), &target.join(entry.file_name()), rustix::fs::RenameFlags::NOREPLACE);
            }
        }
        // Dropping the stage removes it; a failure there leaves only links
        // and copies, which the next run removes.
    }
    Ok(how)
}

/// The filesystem or kernel has no RENAME_EXCHANGE (or the directory is a
/// mount point): nothing moved, so writing file by file is still sound.
fn cannot_exchange(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    [Errno::INVAL, Errno::NOSYS, Errno::XDEV, Errno::BUSY, Errno::OPNOTSUPP]
        .iter()
        .any(|c| Some(c.raw_os_error()) == code)
}

/// Writes to stdout. A reader that went away (`| head`) is not an error.
pub fn stdout(contents: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(contents).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_stale_removes_only_unheld_entries_of_its_own_kinds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = locked_temp(dir.path()).expect("temp");
        let stale_file = dir.path().join(".hacompile-stale");
        fs::write(&stale_file, "x").expect("write");
        let stale_dir = dir.path().join(".hacompile-stage");
        fs::create_dir_all(stale_dir.join("inner")).expect("mkdir");
        let link = dir.path().join(".hacompile-link");
        std::os::unix::fs::symlink("/", &link).expect("symlink");
        let other = dir.path().join("keep.txt");
        fs::write(&other, "x").expect("write");
        clean_stale(dir.path());
        assert!(held.path().exists(), "a live writer's temp file stays");
        assert!(!stale_file.exists() && !stale_dir.exists(), "what a dead run left goes");
        assert!(fs::symlink_metadata(&link).is_ok(), "a symlink is not hacompile's");
        assert!(other.exists());
    }
}

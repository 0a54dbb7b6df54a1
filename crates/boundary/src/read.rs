//! One bounded reader for every input file.
//!
//! A FIFO, a socket or a device (`/dev/zero` behind a symlink) is refused
//! before it is opened for reading, so nothing can block or stream forever;
//! a regular file is read up to `limit` bytes and refused past it, so memory
//! stays bounded whatever the file's size (its metadata may lie, for example
//! on /proc, so the read itself is bounded too).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The limits stated in README.md, one per kind of input.
pub mod limits {
    /// A cluster spec: real ones are a few kilobytes.
    pub const SPEC: u64 = 1024 * 1024;
    /// A stack or compose file: an 8,000-service stack is about 3 MiB.
    pub const STACK: u64 = 16 * 1024 * 1024;
    /// An haproxy.cfg.
    pub const HAPROXY: u64 = 4 * 1024 * 1024;
    /// `hacompile.lock`: a few hundred bytes per image.
    pub const LOCK: u64 = 4 * 1024 * 1024;
    /// `.hacompile.toml`.
    pub const CONFIG: u64 = 1024 * 1024;
    /// An `env_file`.
    pub const ENV_FILE: u64 = 1024 * 1024;
    /// The head of a file read to tell what it is (a YAML file that may be a stack).
    pub const SNIFF: u64 = 64 * 1024;
    /// A manifest or index from a registry: containerd refuses to pull one
    /// larger than this, so a larger one is never worth pinning.
    pub const REGISTRY_MANIFEST: u64 = 4 * 1024 * 1024;
    /// A token service's answer: a JWT of a few kilobytes.
    pub const REGISTRY_TOKEN: u64 = 1024 * 1024;
    /// A tag list page (`?n=1`) or an error body from a registry.
    pub const REGISTRY_SMALL: u64 = 64 * 1024;
}

/// Why a file could not be read. Messages name no content of the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {}", human_size(*limit))]
    TooLarge { limit: u64 },
    #[error("it is a link to a file outside {}: not followed, so that a link committed to a repository cannot show a file of the machine that runs hacompile", .root.display())]
    Outside { root: PathBuf },
}

impl ReadError {
    /// The file does not exist (a caller may treat that as "none").
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// `1 MiB`, `16 MiB`, `512 KiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind_of(ft: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    (!ft.is_file()).then_some("not a regular file")
}

/// The tree a file in directory `dir` belongs to (see [`contained`]): what
/// a configuration found above it must not reach past.
pub fn tree_of(dir: &Path) -> PathBuf {
    tree_root(dir, true)
}

/// The tree a file in directory `dir` belongs to, judged where `dir` is
/// written (links not followed): the git work tree `dir` is in (the
/// nearest directory with a `.git`), else (`use_cwd`) the working directory
/// when `dir` is below it and it is not `/`, else `dir` itself. Canonical.
fn tree_root(dir: &Path, use_cwd: bool) -> PathBuf {
    // Where the path is as written, not where links lead: a directory link
    // committed to a repository (`deploy -> ../../runner`) must not move
    // the tree to its target.
    let cwd = std::env::current_dir().ok();
    let abs = match (&cwd, dir.is_absolute()) {
        (Some(cwd), false) => lexical(&cwd.join(dir)),
        _ => lexical(dir),
    };
    let root = match abs.ancestors().find(|d| d.join(".git").symlink_metadata().is_ok()) {
        Some(repository) => repository.to_path_buf(),
        // The working directory bounds the tree only when it is a tree
        // (`/` would take in the whole machine).
        None => match cwd {
            Some(cwd) if use_cwd && cwd.parent().is_some() && abs.starts_with(&cwd) => cwd,
            _ => abs,
        },
    };
    root.canonicalize().unwrap_or(root)
}

/// `path` with `.` and `..` folded by their text, no link followed.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Refuses a path that leads, through a symbolic link, outside the tree
/// it is in ([`tree_root`] of its directory). A file named directly (not
/// through a link) is always in its own directory. What cannot be resolved
/// is left to the read to report.
fn contained(path: &Path) -> Result<(), ReadError> {
    let Ok(target) = path.canonicalize() else { return Ok(()) };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let root = tree_root(dir, true);
    if target.starts_with(&root) { Ok(()) } else { Err(ReadError::Outside { root }) }
}

/// Is `path`, a file that a file in directory `dir` names (an `env_file`,
/// a config's `file:`), inside the tree that file is in: its git work
/// tree, else `dir` (not the working directory: the file chose the path)?
/// A stack that names `/home/ci/.pgpass` or `../../..` does not make the
/// linter read it. Where the path itself is, not where a link there leads:
/// reading a link refuses one that leads out ([`read_file`]).
pub fn within_tree_of(dir: &Path, path: &Path) -> bool {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return false };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    parent.canonicalize().is_ok_and(|p| p.join(name).starts_with(tree_root(dir, false)))
}

/// Reads a regular file (symlinks followed within its tree, see
/// [`contained`]) of at most `limit` bytes.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    contained(path)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let file = std::fs::File::open(path)?;
    // The file may have been swapped between the two calls: check what was opened.
    if let Some(kind) = kind_of(file.metadata()?.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    read_bounded(file, limit)
}

/// The first `n` bytes (fewer if the file is shorter) of a regular file
/// (symlinks followed), whatever its size: enough to tell what it is.
pub fn read_head(path: &Path, n: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    contained(path)?;
    let file = std::fs::File::open(path)?;
    if let Some(kind) = kind_of(file.metadata()?.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    let mut bytes = Vec::new();
    file.take(n).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads at most `limit` bytes from any reader (stdin); more is refused.
pub fn read_bounded(reader: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// [`read_file`], then UTF-8. The error says where the first bad byte is.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_file(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("it is not UTF-8 (byte {at})")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_kinds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a");
        std::fs::write(&f, b"12345").expect("write");
        assert_eq!(read_file(&f, 5).expect("fits"), b"12345");
        assert!(matches!(read_file(&f, 4), Err(ReadError::TooLarge { limit: 4 })));
        assert!(matches!(read_file(dir.path(), 4), Err(ReadError::NotRegular("a directory"))));
        #[cfg(unix)]
        {
            let link = dir.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
            assert!(matches!(read_file(&link, 4), Err(ReadError::NotRegular("a character device"))));
        }
        assert!(read_file(&dir.path().join("missing"), 4).expect_err("missing").is_not_found());
    }

    /// A link committed to a repository is followed inside it, never out of
    /// it: `docker-stack.yml -> ../home/.pgpass` would show the runner's
    /// file in an error excerpt. A file named directly is read wherever it is.
    #[cfg(unix)]
    #[test]
    fn links_are_followed_within_their_tree_only() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, home) = (dir.path().join("repo"), dir.path().join("home"));
        std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
        std::fs::create_dir_all(repo.join("deploy/prod")).expect("mkdir");
        std::fs::create_dir_all(&home).expect("mkdir");
        std::fs::write(home.join(".pgpass"), b"db:5432:app:app:pw").expect("write");
        std::fs::write(repo.join("common.yml"), b"services: {}").expect("write");
        symlink("../../common.yml", repo.join("deploy/prod/stack.yml")).expect("symlink");
        symlink("../../home/.pgpass", repo.join("deploy/docker-stack.yml")).expect("symlink");
        assert_eq!(
            read_file(&repo.join("deploy/prod/stack.yml"), 100).expect("inside the repository"),
            b"services: {}"
        );
        for read in [
            read_file(&repo.join("deploy/docker-stack.yml"), 100),
            read_head(&repo.join("deploy/docker-stack.yml"), 100),
        ] {
            let e = read.expect_err("outside the repository");
            assert!(matches!(&e, ReadError::Outside { root } if root.ends_with("repo")), "{e:?}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        // A directory link does not carry the tree along with it.
        symlink("../home", repo.join("linked")).expect("symlink");
        for path in [repo.join("linked/.pgpass"), repo.join("deploy/../linked/.pgpass")] {
            assert!(matches!(read_file(&path, 100), Err(ReadError::Outside { .. })), "{}", path.display());
        }
        // Without a repository, the directory the link is in.
        std::fs::write(home.join("own.yml"), b"x").expect("write");
        symlink("own.yml", home.join("link.yml")).expect("symlink");
        symlink("../repo/common.yml", home.join("away.yml")).expect("symlink");
        assert_eq!(read_file(&home.join("link.yml"), 10).expect("same directory"), b"x");
        assert!(matches!(read_file(&home.join("away.yml"), 100), Err(ReadError::Outside { .. })));
        assert_eq!(read_file(&home.join(".pgpass"), 100).expect("named directly"), b"db:5432:app:app:pw");
        // What a file names: in its repository, else beside it or below.
        assert!(within_tree_of(&repo.join("deploy/prod"), &repo.join("common.yml")));
        assert!(!within_tree_of(&repo.join("deploy"), &home.join(".pgpass")));
        assert!(within_tree_of(&home, &home.join("own.yml")));
        assert!(!within_tree_of(&home, &repo.join("common.yml")));
        assert!(within_tree_of(&home, &home.join("away.yml")), "the link is in the tree; reading it refuses it");
        assert!(matches!(read_bounded(std::io::repeat(0), 1000), Err(ReadError::TooLarge { .. })));
    }
}

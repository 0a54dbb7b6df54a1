//! Image references and the lock file.
//!
//! This crate owns two offline things: the grammar of `name[:tag][@digest]`
//! references (as the distribution project defines it, keeping the user's own
//! text so a linter can tell `postgres` from `postgres:latest`), and the
//! `hacompile.lock` format that maps each reference to a content digest.
//! Resolving digests over the network is not here; it feeds this format.

mod lock;
mod reference;

pub use lock::{LOCK_FILE_NAME, LockEntry, LockError, LockFile};
pub use reference::{Digest, ImageRef, RefError};

//! What crosses hacompile's boundary, in one place so that no new input or
//! output can forget it:
//!
//! - [`read`]: every file the program reads (specs, stacks, lock files,
//!   configs, haproxy.cfg) goes through one bounded reader that refuses
//!   anything but a regular file and stops at a stated size.
//! - [`text`]: every text that reaches a terminal or an output file and may
//!   carry input (file names, values, messages) goes through one sanitizer.
//! - [`mask`]: every printed line and message goes through one masking pass.
//! - [`snippet`]: the source excerpt a diagnostic shows, built from a few
//!   lines only (bounded work per diagnostic), masked, sanitized and cropped.

pub mod mask;
pub mod read;
pub mod snippet;
pub mod text;

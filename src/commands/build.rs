//! `hacompile build`: spec (+ lock) -> docker-stack.yml, haproxy.cfg, scripts.

use std::path::{Path, PathBuf};

use hacompile_boundary::read;
use hacompile_compile::{Compiled, OutputFile, compile};
use hacompile_image::{LOCK_FILE_NAME, LockError, LockFile};
use hacompile_spec::{SourceFile, SpecDiagnostic, SpecErrors, ValidSpec, load};

use crate::{exit, output, report};

/// Compile a cluster spec into a hardened stack file and the files it uses.
///
/// Without -o, the stack file goes to stdout and the files it refers to
/// (haproxy.cfg and, for the official image flavor, the replication scripts)
/// are written into the current directory, or into --files-dir: the stack
/// refers to them with paths relative to its own directory, so write them
/// where the stack file will be. With -o DIR everything goes into DIR.
/// The files are replaced together: a failure or a kill leaves the old set or
/// the new set (README: "How build and pin write"); an invalid spec writes
/// nothing. Build reads image digests from the lock file and never touches
/// the network.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// Write docker-stack.yml and its files into this directory.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", conflicts_with_all = ["files_dir", "stack_only"])]
    out_dir: Option<PathBuf>,
    /// Where to write the files the stack refers to when the stack goes to stdout [default: .].
    #[arg(long, value_name = "DIR")]
    files_dir: Option<PathBuf>,
    /// Print only the stack file; write no other file.
    #[arg(long)]
    stack_only: bool,
    /// The lock file with image digests [default: hacompile.lock beside the spec].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let compiled = match compile_spec(&args) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    // The stack last: in the file-by-file fallback it is the last renamed.
    let mut set: Vec<&OutputFile> = compiled.companions().iter().collect();
    let written = match &args.out_dir {
        Some(dir) => {
            set.push(compiled.stack_file());
            write_set(dir, &set)
        }
        None if args.stack_only => Ok(()),
        // The companions first: the stack goes to stdout only once they are in place.
        None => write_set(args.files_dir.as_deref().unwrap_or(Path::new(".")), &set),
    };
    if let Err(exit) = written {
        return exit;
    }
    if args.out_dir.is_none()
        && let Err(e) = output::stdout(compiled.stack_file().contents.as_bytes())
    {
        report::error(&format!("cannot write the stack file to stdout: {e}"), None);
        return exit::INPUT;
    }
    exit::OK
}

fn compile_spec(args: &Args) -> Result<Compiled, u8> {
    let (spec, lock) = spec_and_lock(&args.spec, args.lock.as_deref())?;
    compile(&spec, &lock).map_err(report_spec_errors)
}

/// Reports spec diagnostics; the exit code of invalid input.
pub(crate) fn report_spec_errors(e: SpecErrors) -> u8 {
    report::diagnostics(&e);
    exit::INPUT
}

/// The validated spec and its lock (`--lock FILE`, or hacompile.lock beside
/// the spec), errors reported: what build, dockerfile and restore start from.
pub(crate) fn spec_and_lock(spec: &Path, lock: Option<&Path>) -> Result<(ValidSpec, LockFile), u8> {
    let source = SourceFile::read(spec).map_err(report_spec_errors)?;
    let spec_model = load(&source).map_err(report_spec_errors)?;
    let lock_path = lock.map_or_else(|| spec.with_file_name(LOCK_FILE_NAME), Path::to_path_buf);
    let lock = read_lock(&lock_path, lock.is_some())?;
    Ok((spec_model, lock))
}

/// Reads the lock; a missing default lock is an empty one (each image then
/// gets its own "not locked" error at its reference in the spec).
pub(crate) fn read_lock(path: &Path, explicit: bool) -> Result<LockFile, u8> {
    // The bounded reader: a FIFO, a device or a huge file is refused at once.
    let source = match read::read_text(path, read::limits::LOCK) {
        Ok(text) => SourceFile::new(path.display().to_string(), text),
        Err(e) if !explicit && e.is_not_found() => return Ok(LockFile::default()),
        Err(e) => {
            report::error(&format!("cannot read the lock file {}: {e}", path.display()), Some("check the path"));
            return Err(exit::INPUT);
        }
    };
    LockFile::parse(source.text()).map_err(|e| {
        let span = match &e {
            LockError::Syntax { span: Some(span), .. } => span.clone(),
            _ => 0..0,
        };
        let d = SpecDiagnostic::new(&source, "lock::invalid", span, e.to_string())
            .help("regenerate it with `hacompile lock SPEC` (online), or restore it from version control");
        report::diagnostics(&SpecErrors::one(d));
        exit::INPUT
    })
}

fn write_set(dir: &Path, files: &[&OutputFile]) -> Result<(), u8> {
    let files: Vec<output::NewFile<'_>> = files
        .iter()
        .map(|f| output::NewFile { name: &f.name, contents: f.contents.as_bytes(), executable: f.executable })
        .collect();
    output::replace_dir(dir, &files).map(|_| ()).map_err(|e| {
        report::error(&e.to_string(), Some(e.help()));
        exit::INPUT
    })
}

//! `hacompile lock`: resolve the spec's images to digests and record them.

use std::io::IsTerminal;
use std::path::PathBuf;

use hacompile_image::{ImageRef, LOCK_FILE_NAME, LockEntry, LockFile};
use hacompile_spec::{SourceFile, load};

use super::resolving::{Format, RegistryArgs};
use crate::{exit, output, report};

/// Resolve the images of a spec to content digests and write hacompile.lock.
///
/// Without options, images that have no lock entry are resolved and added;
/// existing entries are kept. --update re-resolves every tag and shows what
/// changed; --check re-resolves every tag and exits 1 if any digest differs
/// from the lock (or is missing), writing nothing. The lock is written
/// atomically; a failed run leaves it untouched. Exit codes: 0 ok, 1 drift
/// (--check), 2 invalid input or a registry error.
#[derive(clap::Args)]
pub struct Args {
    spec: PathBuf,
    /// Re-resolve every tag and record the new digests.
    #[arg(long, conflicts_with = "check")]
    update: bool,
    /// Re-resolve every tag and compare with the lock; write nothing.
    #[arg(long)]
    check: bool,
    /// The lock file [default: hacompile.lock beside the spec].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Resolve only this image of the spec (as written there; repeatable);
    /// the lock's other entries are kept as they are. For the first deploy of
    /// an image you build: `--only postgres:16`, then `hacompile dockerfile`.
    #[arg(long, value_name = "REFERENCE")]
    only: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(serde::Serialize)]
struct Line {
    reference: String,
    digest: String,
    previous: Option<String>,
    status: &'static str,
}

pub fn run(args: Args) -> u8 {
    let source = match SourceFile::read(&args.spec) {
        Ok(s) => s,
        Err(e) => {
            report::diagnostics(&e);
            return exit::INPUT;
        }
    };
    let spec = match load(&source) {
        Ok(s) => s,
        Err(e) => {
            report::diagnostics(&e);
            return exit::INPUT;
        }
    };
    let lock_path = args.lock.clone().unwrap_or_else(|| args.spec.with_file_name(LOCK_FILE_NAME));
    let old = match std::fs::read_to_string(&lock_path) {
        Ok(text) => match LockFile::parse(&text) {
            Ok(l) => l,
            Err(e) => {
                report::error(
                    &format!("{}: {e}", lock_path.display()),
                    Some("fix or delete it, then run `hacompile lock` again"),
                );
                return exit::INPUT;
            }
        },
        Err(_) => LockFile::default(),
    };
    // Images whose spec reference carries a digest are pinned already.
    let mut images: Vec<ImageRef> = Vec::new();
    for (img, _) in spec.images() {
        if img.digest().is_none() && !images.iter().any(|i| i.as_written() == img.as_written()) {
            images.push(img.clone());
        }
    }
    // `--only`: the named images; the others keep their entries untouched.
    let mut kept: Vec<LockEntry> = Vec::new();
    if !args.only.is_empty() {
        if let Some(unknown) = args.only.iter().find(|o| !images.iter().any(|i| i.as_written() == o.as_str())) {
            let named: Vec<&str> = images.iter().map(|i| i.as_written()).collect();
            report::error(
                &format!("`--only {unknown}`: the spec names no such image"),
                Some(&format!("name an image as the spec writes it: {}", named.join(", "))),
            );
            return exit::INPUT;
        }
        kept = images
            .iter()
            .filter(|i| !args.only.iter().any(|o| o == i.as_written()))
            .filter_map(|i| old.get(i.as_written()).cloned())
            .collect();
        images.retain(|i| args.only.iter().any(|o| o == i.as_written()));
    }
    let to_resolve: Vec<ImageRef> = if args.update || args.check {
        images.clone()
    } else {
        images.iter().filter(|i| old.get(i.as_written()).is_none()).cloned().collect()
    };
    args.registry.warn_platform();
    let progress = crate::progress::Images::start();
    let Some(resolver) = args.registry.resolver(progress.clone()) else {
        return exit::INPUT;
    };
    let tty = std::io::stderr().is_terminal();
    let results = resolver.resolve_all(&to_resolve);
    progress.finish();
    let mut failed = false;
    let mut new = LockFile::default();
    let mut lines = Vec::new();
    for img in &images {
        let previous = old.get(img.as_written()).map(|e| e.digest.clone());
        let resolved = to_resolve.iter().position(|r| r.as_written() == img.as_written()).map(|i| &results[i]);
        let entry = match resolved {
            None => old.get(img.as_written()).cloned().expect("unresolved images have an entry"),
            Some(Err(e)) => {
                report::error(&e.to_string(), None);
                failed = true;
                continue;
            }
            Some(Ok(r)) => LockEntry {
                reference: img.as_written().to_owned(),
                name: img.canonical_name(),
                tag: img.tag().unwrap_or_default().to_owned(),
                digest: r.digest.to_string(),
                media_type: r.media_type.clone(),
                registry: img.registry().to_owned(),
            },
        };
        let status = match &previous {
            None => "added",
            Some(p) if *p == entry.digest => "unchanged",
            Some(_) => "changed",
        };
        if tty || args.registry.format == Format::Human {
            let detail = match (status, &previous) {
                ("changed", Some(p)) => format!(" (was {p})"),
                _ => String::new(),
            };
            let verb = if args.check && status == "changed" { "DRIFT" } else { status };
            report::note(&format!("{:<9} {} {}{detail}", verb, img.as_written(), entry.digest));
        }
        lines.push(Line { reference: img.as_written().to_owned(), digest: entry.digest.clone(), previous, status });
        new.insert(entry);
    }
    if failed {
        report::error("nothing was written", Some("fix the errors above and run again"));
        return exit::INPUT;
    }
    for entry in kept {
        new.insert(entry);
    }
    if args.registry.format == Format::Json {
        let text = serde_json::to_string_pretty(
            &serde_json::json!({ "lock": lock_path.display().to_string(), "images": lines }),
        )
        .expect("plain data serializes");
        let _ = output::stdout(format!("{text}\n").as_bytes());
    }
    let drift = lines.iter().any(|l| l.status != "unchanged");
    if args.check {
        if drift {
            report::error(
                "the lock does not match the registries",
                Some("run `hacompile lock --update SPEC` and review the new digests"),
            );
            return exit::FINDINGS;
        }
        return exit::OK;
    }
    if new.render() == old.render() && lock_path.exists() {
        return exit::OK;
    }
    match output::write_atomic(&lock_path, new.render().as_bytes(), false) {
        Ok(()) => exit::OK,
        Err(e) => {
            report::error(&format!("cannot write {}: {e}", lock_path.display()), None);
            exit::INPUT
        }
    }
}

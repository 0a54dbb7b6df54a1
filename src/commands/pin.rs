//! `hacompile pin`: rewrite the image lines of stack/compose files in place.

use std::io::Read;
use std::path::PathBuf;

use hacompile_image::ImageRef;
use hacompile_lint::{ImageSite, Source};

use super::resolving::{Format, RegistryArgs};
use crate::{exit, output, report};

/// Pin every image of stack/compose files to the digest its tag names now.
///
/// Rewrites each literal `image:` value as name:tag@sha256:... and changes
/// nothing else: comments, anchors, quoting and spacing stay as they are.
/// Images that carry a digest are re-resolved by their tag and updated.
/// --check writes nothing and exits 1 where an image is unpinned or its
/// digest no longer matches its tag. Exit codes: 0 ok, 1 findings (--check),
/// 2 invalid input or a registry error.
#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Report unpinned and drifted images; write nothing.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

struct File {
    path: PathBuf,
    text: String,
    sites: Vec<(ImageSite, ImageRef)>,
}

fn load(path: &PathBuf) -> Result<File, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(hacompile_lint::MAX_STACK_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > hacompile_lint::MAX_STACK_BYTES {
        return Err(format!("{} is larger than 16 MiB", path.display()));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let src = Source::new(path.display().to_string(), text.clone());
    let images = hacompile_lint::stack_images(&src).map_err(|e| {
        let (line, col) = src.line_col(e.span.start);
        format!("{}:{line}:{col}: {}", path.display(), e.message)
    })?;
    let mut sites = Vec::new();
    for site in images {
        let r = ImageRef::parse(&site.text).map_err(|e| {
            let (line, col) = src.line_col(site.span.start);
            format!("{}:{line}:{col}: service `{}`: {e}", path.display(), site.service)
        })?;
        if r.tag().is_none() {
            let (line, col) = src.line_col(site.span.start);
            return Err(format!(
                "{}:{line}:{col}: service `{}`: `{}` has no tag to resolve; name the version first",
                path.display(),
                site.service,
                site.text
            ));
        }
        sites.push((site, r));
    }
    Ok(File { path: path.clone(), text, sites })
}

#[derive(serde::Serialize)]
struct Line {
    file: String,
    service: String,
    image: String,
    pinned: String,
    status: &'static str,
}

pub fn run(args: Args) -> u8 {
    let mut files = Vec::new();
    for path in &args.files {
        match load(path) {
            Ok(f) => files.push(f),
            Err(e) => {
                report::error(&e, None);
                return exit::INPUT;
            }
        }
    }
    let refs: Vec<ImageRef> = files.iter().flat_map(|f| f.sites.iter().map(|(_, r)| r.clone())).collect();
    args.registry.warn_platform();
    let progress = crate::progress::Images::start();
    let Some(resolver) = args.registry.resolver(progress.clone()) else {
        return exit::INPUT;
    };
    let results = resolver.resolve_all(&refs);
    progress.finish();
    if let Some(errors) = Some(results.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>())
        && !errors.is_empty()
    {
        let mut seen = Vec::new();
        for e in errors {
            let text = e.to_string();
            if !seen.contains(&text) {
                report::error(&text, None);
                seen.push(text);
            }
        }
        report::error("nothing was written", None);
        return exit::INPUT;
    }
    let mut digests = results.into_iter().map(|r| r.expect("errors were handled"));
    let mut lines = Vec::new();
    let mut findings = 0;
    // Every new text first; the files are written together at the end, so a
    // failure on one leaves every file as it was.
    let mut rewrites: Vec<(PathBuf, Vec<u8>, output::Mode)> = Vec::new();
    for file in &files {
        let mut text = file.text.clone();
        // Replace from the end so earlier spans stay valid.
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for (site, r) in &file.sites {
            let resolved = digests.next().expect("one result per site");
            let pinned = r.pinned(&resolved.digest);
            let status = match r.digest() {
                None => "unpinned",
                Some(d) if *d == resolved.digest => "pinned",
                Some(_) => "drifted",
            };
            if status != "pinned" {
                findings += 1;
                // A value written with escapes is replaced as a whole
                // scalar; a JSON string is a valid YAML double-quoted one.
                let new = if site.whole_scalar {
                    serde_json::to_string(&pinned).expect("a string serializes")
                } else {
                    pinned.clone()
                };
                edits.push((site.span.clone(), new));
            }
            let shown = match (status, r.digest()) {
                ("drifted", Some(old)) => format!("{status}: {} (tag now {}, was {old})", site.text, resolved.digest),
                _ => format!("{status}: {}", if status == "pinned" { site.text.clone() } else { pinned.clone() }),
            };
            if args.registry.format == Format::Human {
                // One line per image, led by the file's name: nothing of the
                // input may break it or make it read as a workflow command.
                let path = hacompile_boundary::text::leading_path(&file.path.display().to_string()).into_owned();
                let rest = format!("service `{}`: {shown}", site.service);
                report::note(&format!("{path}: {}", hacompile_boundary::text::line(&rest)));
            }
            lines.push(Line {
                file: file.path.display().to_string(),
                service: site.service.clone(),
                image: site.text.clone(),
                pinned,
                status,
            });
        }
        if args.check || edits.is_empty() {
            continue;
        }
        // An anchored image used by several services is one edit.
        edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
        edits.dedup_by_key(|(span, _)| span.start);
        for (span, new) in edits {
            text.replace_range(span, &new);
        }
        rewrites.push((file.path.clone(), text.into_bytes(), output::Mode::KeepExisting));
    }
    let rewrites: Vec<(PathBuf, &[u8], output::Mode)> =
        rewrites.iter().map(|(path, text, mode)| (path.clone(), text.as_slice(), *mode)).collect();
    if let Err(e) = output::write_files(&rewrites) {
        report::error(&e.to_string(), None);
        if e.changed_nothing() {
            report::error("nothing was written", None);
        }
        return exit::INPUT;
    }
    if args.registry.format == Format::Json {
        let text =
            serde_json::to_string_pretty(&serde_json::json!({ "images": lines })).expect("plain data serializes");
        let _ = output::stdout(format!("{text}\n").as_bytes());
    }
    if args.check && findings > 0 { exit::FINDINGS } else { exit::OK }
}

//! `hacompile graph`: the topology as SVG or Mermaid.

use std::path::PathBuf;

use hacompile_compile::graph::{graph, mermaid, svg};
use hacompile_spec::{SourceFile, SpecErrors, load};

use crate::{exit, output, report};

/// Draw the cluster a spec describes: clients, the proxies, each database
/// service with the node its constraints name and its volume, etcd
/// (patroni), the networks and the write and read routes (dashed: a
/// fallback). SVG for documents, Mermaid for READMEs. Offline; the same
/// spec gives the same bytes.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "svg")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Svg,
    Mermaid,
}

pub fn run(args: Args) -> u8 {
    let fail = |e: SpecErrors| {
        report::diagnostics(&e);
        exit::INPUT
    };
    let spec = match SourceFile::read(&args.spec).map_err(fail).and_then(|s| load(&s).map_err(fail)) {
        Ok(spec) => spec,
        Err(code) => return code,
    };
    let g = graph(&spec);
    let text = match args.format {
        Format::Svg => svg(&g),
        Format::Mermaid => mermaid(&g),
    };
    match output::stdout(text.as_bytes()) {
        Ok(()) => exit::OK,
        Err(e) => {
            report::error(&format!("cannot write to stdout: {e}"), None);
            exit::INPUT
        }
    }
}

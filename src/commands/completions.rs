//! `hacompile completions` and `hacompile man`: generated from the CLI's own
//! definition, so they always match the parser.

use clap::CommandFactory;

use crate::{exit, output, report};

/// Print a shell completion script.
///
/// bash: `hacompile completions bash > /etc/bash_completion.d/hacompile`;
/// zsh: `hacompile completions zsh > "${fpath[1]}/_hacompile"`;
/// fish: `hacompile completions fish > ~/.config/fish/completions/hacompile.fish`.
#[derive(clap::Args)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Print the man page, hacompile(1), as roff.
///
/// `hacompile man > /usr/local/share/man/man1/hacompile.1`, or read it at
/// once with `hacompile man | man -l -`.
#[derive(clap::Args)]
pub struct ManArgs {}

fn emit(bytes: &[u8]) -> u8 {
    match output::stdout(bytes) {
        Ok(()) => exit::OK,
        Err(e) => {
            report::error(&format!("cannot write to stdout: {e}"), None);
            exit::INPUT
        }
    }
}

pub fn run(args: Args) -> u8 {
    let mut cmd = crate::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hacompile", &mut buf);
    emit(&buf)
}

pub fn man(_args: ManArgs) -> u8 {
    let cmd = crate::Cli::command();
    let mut buf = Vec::new();
    let page = clap_mangen::Man::new(cmd.clone());
    if let Err(e) = page.render(&mut buf) {
        report::error(&format!("cannot render the man page: {e}"), None);
        return exit::INPUT;
    }
    // One section per subcommand, after the page's own: what `--help` of
    // each says, in the same page.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("hacompile {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        buf.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let man = clap_mangen::Man::new(sub);
        for part in [
            man.render_description_section(&mut buf),
            man.render_synopsis_section(&mut buf),
            man.render_options_section(&mut buf),
        ] {
            if let Err(e) = part {
                report::error(&format!("cannot render the man page: {e}"), None);
                return exit::INPUT;
            }
        }
    }
    emit(&buf)
}

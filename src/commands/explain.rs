//! `hacompile explain CODE`: a rule's documentation.

use hacompile_lint::RULES;

use crate::{exit, output, report};

/// Explain a lint rule: what it does, why it matters, an example, the fix.
#[derive(clap::Args)]
pub struct Args {
    /// A rule code (HC101) or name (plaintext-secret-in-environment).
    code: Option<String>,
    /// List every rule.
    #[arg(long)]
    list: bool,
    /// Print the rules page (docs/rules.md) in Markdown.
    #[arg(long, conflicts_with_all = ["code", "list"])]
    markdown: bool,
}

pub fn run(args: Args) -> u8 {
    let text = match (&args.code, args.list) {
        _ if args.markdown => hacompile_lint::rules::rules_page(),
        (_, true) | (None, false) => RULES
            .iter()
            .map(|r| format!("{}  {:<8} {:<36} {}\n", r.code, r.severity.as_str(), r.name, r.summary))
            .collect(),
        (Some(code), false) => match hacompile_lint::rules::find(code) {
            Some(r) => hacompile_lint::rules::explain(r),
            None if hacompile_lint::rules::retired(code).is_some() => {
                let why = hacompile_lint::rules::retired(code).unwrap_or_default();
                format!("# {code}\n\n{why}\n")
            }
            None => {
                report::error(&format!("`{code}` is not a rule"), Some("`hacompile explain --list` lists them"));
                return exit::INPUT;
            }
        },
    };
    match output::stdout(text.as_bytes()) {
        Ok(()) => exit::OK,
        Err(_) => exit::INPUT,
    }
}

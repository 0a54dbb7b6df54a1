//! Renders diagnostics for people: miette's graphical report, with colour
//! only on a terminal and never when NO_COLOR is set.

use std::io::{IsTerminal, Write};

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

fn handler() -> GraphicalReportHandler {
    let stderr = std::io::stderr();
    let colour = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    GraphicalReportHandler::new_themed(theme).with_context_lines(2)
}

/// Writes every diagnostic (and its related ones) to stderr.
pub fn diagnostics(d: &dyn Diagnostic) {
    let handler = handler();
    let mut text = String::new();
    match d.related() {
        Some(related) => {
            for r in related {
                let _ = handler.render_report(&mut text, r);
            }
        }
        None => {
            let _ = handler.render_report(&mut text, d);
        }
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// A one-line message on stderr.
pub fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "{}", hacompile_boundary::text::block(message));
}

/// A plain error without a source location.
pub fn error(message: &str, help: Option<&str>) {
    // Messages carry paths and values from input: one sanitizer for all of them.
    use hacompile_boundary::text::block;
    let mut err = std::io::stderr();
    let _ = writeln!(err, "error: {}", block(message));
    if let Some(help) = help {
        let _ = writeln!(err, "  help: {}", block(help));
    }
}

//! The progress line of slow work: images resolving in `lock` and `pin`, and
//! the waits a registry imposes (429 Retry-After, retried 5xx and timeouts).
//! Drawn on stderr only when it is a terminal whose TERM is not `dumb`;
//! otherwise nothing at all is drawn, so logs, pipes and CI stay clean.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use hacompile_boundary::text::line;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a progress display may draw: stderr is a terminal that can move
/// its cursor.
pub fn shown() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Images resolving: a counter, the last image done, the elapsed time.
pub struct Images {
    bar: ProgressBar,
}

impl Images {
    /// Hidden unless [`shown`]; the resolver tells how many images there are.
    pub fn start() -> Arc<Self> {
        let bar = if shown() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} resolving images [{pos}/{len}] {elapsed} {wide_msg}")
                    .expect("the template is valid"),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Arc::new(Self { bar })
    }

    /// Removes the line: what was resolved is reported after it.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl hacompile_registry::Progress for Images {
    fn queued(&self, count: usize) {
        self.bar.set_length(count as u64);
        if count > 0 {
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
    }

    fn finished(&self, image: &str, ok: bool) {
        self.bar.inc(1);
        let verb = if ok { "resolved" } else { "failed" };
        self.bar.set_message(format!("{verb} {}", line(image)));
    }

    fn waiting(&self, image: &str, registry: &str, wait: Duration, why: &str) {
        // A line of its own above the counter: a wait explains a slow run.
        self.bar.println(format!("{}: {why}; retrying {} in {:.1} s", line(registry), line(image), wait.as_secs_f64()));
    }
}

//! The progress bar of `simulator run` on stderr: requests finished out of the total (when the
//! workload says how many), the percentage, the elapsed time and an ETA, and the simulated time and
//! speed. Shown only on a terminal, and only for runs longer than about a second.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::SimConfig;
use crate::engine::Progress;

/// The bar of one run.
pub struct RunProgress {
    bar: ProgressBar,
    start: Instant,
    total: Option<u64>,
    enabled: bool,
    shown: bool,
}

/// Requests a run will serve, when the configuration says (`num_requests`).
pub fn expected_requests(cfg: &SimConfig) -> Option<u64> {
    cfg.workload.num_requests
}

impl RunProgress {
    /// A bar for a run of `total` requests (unknown: a spinner), drawn unless `quiet` or stderr is
    /// not a terminal.
    pub fn new(quiet: bool, total: Option<u64>) -> Self {
        RunProgress {
            bar: ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden()),
            start: Instant::now(),
            total,
            enabled: !quiet && std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Takes the engine's latest progress.
    pub fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        let elapsed = self.start.elapsed();
        if !self.shown && elapsed > Duration::from_secs(1) {
            self.shown = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            let template = if self.total.is_some() {
                "{bar:30} {pos}/{len} requests ({percent}%), {elapsed} elapsed, ETA {eta}; {msg}"
            } else {
                "{spinner} {pos} requests done, {elapsed} elapsed; {msg}"
            };
            self.bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        if self.shown {
            self.bar.set_position(p.completed);
            self.bar.set_message(format!(
                "{} arrived, {:.1} s simulated, {:.0} simulated req/s",
                p.arrived,
                p.now_ns as f64 * 1e-9,
                p.completed as f64 / elapsed.as_secs_f64().max(1e-9)
            ));
        }
    }

    /// Clears the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

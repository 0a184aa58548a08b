//! Progress: renders sweep events for a person. On a terminal, indicatif bars (the grid, and
//! one line per active run); otherwise one plain line per event that matters, with no control
//! characters, for CI and SLURM logs. `NO_COLOR` turns colours off.

mod bars;
mod plain;

use std::io::IsTerminal;

use crate::schedule::SweepEvent;

pub use bars::BarProgress;
pub use plain::PlainProgress;

/// Something that shows sweep events.
pub trait Render {
    fn event(&mut self, event: &SweepEvent);
    /// Called once after the last event.
    fn finish(&mut self);
}

/// Bars when stderr is a terminal (and `TERM` is not `dumb`), plain lines otherwise.
pub fn stderr_renderer() -> Box<dyn Render> {
    let terminal = std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
    if terminal {
        Box::new(BarProgress::new(colors_enabled()))
    } else {
        Box::new(PlainStderr(PlainProgress::new()))
    }
}

/// False when `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
pub fn colors_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

struct PlainStderr(PlainProgress);

impl Render for PlainStderr {
    fn event(&mut self, event: &SweepEvent) {
        if let Some(line) = self.0.line(event) {
            eprintln!("{line}");
        }
    }

    fn finish(&mut self) {}
}

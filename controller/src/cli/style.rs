//! Colours for terminal output: on a TTY only, never in pipes, logs or tests.
//!
//! Rendering pads cells to their column width first and colours them afterwards, so escape
//! codes never disturb the alignment.

use sluice_crds::{AnalysisPhase, RolloutPhase};

/// What a piece of text says about health, which picks its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Good,
    Busy,
    Bad,
    Dim,
    Plain,
}

/// Whether to colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// `text` in the colour of `tone` (unchanged without colour).
    pub fn paint(self, tone: Tone, text: &str) -> String {
        let code = match tone {
            Tone::Good => "32",
            Tone::Busy => "33",
            Tone::Bad => "31",
            Tone::Dim => "2",
            Tone::Plain => return text.to_owned(),
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Bold heading.
    pub fn bold(self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Icon and tone of a Rollout phase (Argo's icons).
pub fn rollout_phase(phase: Option<RolloutPhase>) -> (&'static str, Tone) {
    match phase {
        Some(RolloutPhase::Healthy) => ("✔", Tone::Good),
        Some(RolloutPhase::Progressing) => ("◌", Tone::Busy),
        Some(RolloutPhase::Paused) => ("॥", Tone::Busy),
        Some(RolloutPhase::Degraded) => ("✖", Tone::Bad),
        None => ("?", Tone::Dim),
    }
}

/// Icon and tone of an analysis phase.
pub fn analysis_phase(phase: AnalysisPhase) -> (&'static str, Tone) {
    match phase {
        AnalysisPhase::Successful => ("✔", Tone::Good),
        AnalysisPhase::Running => ("◌", Tone::Busy),
        AnalysisPhase::Pending => ("…", Tone::Dim),
        AnalysisPhase::Inconclusive => ("⚠", Tone::Busy),
        AnalysisPhase::Failed | AnalysisPhase::Error => ("✖", Tone::Bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_when_asked() {
        assert_eq!(Style { color: false }.paint(Tone::Bad, "x"), "x");
        assert_eq!(
            Style { color: true }.paint(Tone::Bad, "x"),
            "\x1b[31mx\x1b[0m"
        );
        assert_eq!(Style { color: true }.paint(Tone::Plain, "x"), "x");
    }
}

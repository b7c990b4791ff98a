//! The canary step list: `Step: 2/5` and one line per step, marked done, current or to come.

use sluice_crds::{CanaryStep, SetCanaryScale, StringMatch};

use super::{LABEL, label};
use crate::cli::style::{Style, Tone};

/// `Step: i/n` (Argo's numbering: `i` steps are done) and the marked step list.
pub(crate) fn render(steps: &[CanaryStep], current: Option<i32>, style: Style) -> Vec<String> {
    let current = current.and_then(|i| usize::try_from(i).ok());
    let done = current.unwrap_or(0).min(steps.len());
    let mut lines = vec![label("  Step", format!("{done}/{}", steps.len()))];
    for (i, step) in steps.iter().enumerate() {
        let (mark, tone) = match current {
            Some(c) if i < c => ("✔", Tone::Good),
            Some(c) if i == c => ("▶", Tone::Busy),
            _ => (" ", Tone::Dim),
        };
        let text = format!("{mark} {i}: {}", describe(step));
        let first = if i == 0 { "  Steps:" } else { "" };
        lines.push(format!("{first:LABEL$}{}", style.paint(tone, &text)));
    }
    lines
}

/// One step in a few words, in the manifest's vocabulary.
pub(crate) fn describe(step: &CanaryStep) -> String {
    match step {
        CanaryStep::SetWeight(w) => format!("setWeight {}", w.get()),
        CanaryStep::Pause(p) => match p.duration {
            Some(d) => format!("pause {d}"),
            None => "pause (until promoted)".to_owned(),
        },
        CanaryStep::Analysis(a) => {
            let names: Vec<&str> = a
                .templates
                .iter()
                .map(|t| t.template_name.as_str())
                .collect();
            format!("analysis {}", names.join(", "))
        }
        CanaryStep::SetCanaryScale(scale) => match scale {
            SetCanaryScale::Replicas(n) => format!("setCanaryScale replicas {}", n.get()),
            SetCanaryScale::Weight(w) => format!("setCanaryScale weight {}", w.get()),
            SetCanaryScale::MatchTrafficWeight(_) => "setCanaryScale matchTrafficWeight".into(),
        },
        CanaryStep::SetHeaderRoute(h) if h.matches.is_empty() => {
            format!("setHeaderRoute {} removed", h.name)
        }
        CanaryStep::SetHeaderRoute(h) => {
            let matches: Vec<String> = h
                .matches
                .iter()
                .map(|m| format!("{}{}", m.header_name, string_match(&m.header_value)))
                .collect();
            format!("setHeaderRoute {} ({})", h.name, matches.join(", "))
        }
        CanaryStep::SetMirrorRoute(m) if m.matches.is_empty() => {
            format!("setMirrorRoute {} removed", m.name)
        }
        CanaryStep::SetMirrorRoute(m) => format!(
            "setMirrorRoute {} ({}%)",
            m.name,
            m.percentage.map_or(100, |p| p.get())
        ),
    }
}

fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("={v}"),
        StringMatch::Prefix(v) => format!("^={v}"),
        StringMatch::Regex(v) => format!("~={v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::from_yaml;

    fn steps(yaml: &str) -> Vec<CanaryStep> {
        from_yaml(yaml).unwrap()
    }

    #[test]
    fn marks_done_current_and_coming_steps() {
        let steps =
            steps("[{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {duration: 30s}}]");
        let lines = render(&steps, Some(1), Style::default());
        assert_eq!(
            lines,
            [
                "  Step:        1/4",
                "  Steps:       ✔ 0: setWeight 20",
                "               ▶ 1: pause (until promoted)",
                "                 2: setWeight 50",
                "                 3: pause 30s",
            ]
        );
    }

    #[test]
    fn all_done_after_the_last_step() {
        let steps = steps("[{setWeight: 20}]");
        let lines = render(&steps, Some(1), Style::default());
        assert_eq!(lines[0].trim(), "Step:        1/1");
        assert!(lines[1].ends_with("✔ 0: setWeight 20"));
    }

    #[test]
    fn describes_routes_and_scales() {
        let steps = steps(
            r#"
- setHeaderRoute: {name: h, match: [{headerName: x-canary, headerValue: {exact: "true"}}]}
- setMirrorRoute: {name: m, percentage: 10, match: [{path: {prefix: /api}}]}
- setHeaderRoute: {name: h}
- setCanaryScale: {replicas: 2}
- analysis: {templates: [{templateName: success-rate}]}
"#,
        );
        let described: Vec<String> = steps.iter().map(describe).collect();
        assert_eq!(
            described,
            [
                "setHeaderRoute h (x-canary=true)",
                "setMirrorRoute m (10%)",
                "setHeaderRoute h removed",
                "setCanaryScale replicas 2",
                "analysis success-rate",
            ]
        );
    }
}

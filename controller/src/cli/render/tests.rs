use super::fixtures::{replica_set, rollout, run};
use super::*;

fn paused_at_step_one() -> Snapshot {
    Snapshot::new(
        rollout(),
        [
            replica_set("web-def", "def", 1, 3),
            replica_set("web-abc", "abc", 2, 2),
            replica_set("web-old", "old", 0, 0),
        ],
        [run("web-abc-bg", "abc", "background")],
    )
}

#[test]
fn the_full_view_shows_step_weights_images_revisions_analysis_and_conditions() {
    let text = render(&paused_at_step_one(), Style::default()).join("\n");
    let expected = "\
Name:          web
Namespace:     shop
Status:        ॥ Paused
Message:       CanaryPauseStep
Strategy:      Canary
  Step:        1/4
  Steps:       ✔ 0: setWeight 50
               ▶ 1: pause (until promoted)
                 2: setWeight 80
                 3: pause 30s
  Weights:     canary 50 · stable 50 · verified
Images:        web:2 (canary)
               web:1 (stable)
Replicas:
  Desired:     3
  Current:     5
  Updated:     2
  Ready:       5
  Available:   5

NAME                KIND         STATUS        DESIRED  READY  AVAILABLE  INFO
⟳ web               Rollout      ॥ Paused      3        5      5
├──# revision:2
│  ├──⧉ web-abc     ReplicaSet   ✔ Healthy     2        2      2          canary
│  └──α web-abc-bg  AnalysisRun  ◌ Running                                background · ✔ 2 ✖ 0 ⚠ 0
├──# revision:1
│  └──⧉ web-def     ReplicaSet   ✔ Healthy     3        3      3          stable
└──# revision:0
   └──⧉ web-old     ReplicaSet   • ScaledDown  0        0      0          old

Analysis:
  α web-abc-bg  ◌ Running
    ◌ success-rate  [0.99]  2 measured  result[0] >= 0.95 held

Conditions:
  TYPE         STATUS  REASON         MESSAGE
  Progressing  True    RolloutPaused  Rollout is paused";
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn colour_only_with_a_colour_style() {
    let plain = render(&paused_at_step_one(), Style { color: false }).join("\n");
    assert!(!plain.contains('\x1b'));
    let coloured = render(&paused_at_step_one(), Style { color: true }).join("\n");
    assert!(coloured.contains("\x1b[33m॥ Paused"), "{coloured}");
}

#[test]
fn an_aborted_rollout_shows_degraded_and_unverified_weights() {
    let mut r = rollout();
    let status = r.status.as_mut().unwrap();
    status.phase = Some(sluice_crds::RolloutPhase::Degraded);
    status.message = Some("RolloutAborted: aborted by the user".into());
    status.abort = true;
    let weights = status.canary.as_mut().unwrap().weights.as_mut().unwrap();
    weights.canary.weight = sluice_crds::Weight::ZERO;
    weights.stable.weight = sluice_crds::Weight::FULL;
    weights.verified = Some(false);
    let lines = render(&Snapshot::new(r, [], []), Style::default());
    assert!(
        lines.contains(&"Status:        ✖ Degraded".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"  Weights:     canary 0 · stable 100 · not verified yet".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"Images:        web:2".to_owned()),
        "without ReplicaSets the template's images are shown: {lines:#?}"
    );
}

#[test]
fn a_lagging_status_says_so() {
    let mut r = rollout();
    r.metadata.generation = Some(3);
    let lines = render(&Snapshot::new(r, [], []), Style::default());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Observed:") && l.contains("not seen"))
    );
}

#[test]
fn the_compact_line_has_phase_step_weights_replica_sets_and_analysis() {
    assert_eq!(
        compact(&paused_at_step_one()),
        "web Paused: CanaryPauseStep | step 1/4 | canary 50 · stable 50 · verified \
         | rs abc canary 2/2/2, def stable 3/3/3 | analysis background Running"
    );
}

#[test]
fn a_run_of_an_unknown_revision_gets_its_own_branch() {
    let s = Snapshot::new(rollout(), [], [run("web-zzz-step-2", "zzz", "step-2")]);
    let lines = tree::render(&s, Style::default());
    assert!(lines.iter().any(|l| l == "└──# hash:zzz"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.ends_with("step 2 · ✔ 2 ✖ 0 ⚠ 0")),
        "{lines:#?}"
    );
}

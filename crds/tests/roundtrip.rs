//! Argo-Rollouts-shaped manifests parse into the Sluice types and serialize back to the same
//! shape, so a migrating team changes only `apiVersion`.

use std::time::Duration as StdDuration;

use serde_json::json;
use sluice_crds::{
    AnalysisTemplate, CanaryStep, ClusterAnalysisTemplate, IntOrPercent, Judge, NoDataPolicy,
    PodTemplateHashValue, Rollout, RolloutStatus, SetCanaryScale, Strategy, StringMatch, ValueFrom,
    Weight,
};

const CANARY: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  replicas: 5
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: demo
        image: demo:1
  strategy:
    canary:
      canaryService: demo-canary
      stableService: demo-stable
      maxSurge: "25%"
      maxUnavailable: 0
      trafficRouting:
        istio:
          virtualService:
            name: demo
            routes: [primary]
            tlsRoutes:
            - port: 443
              sniHosts: [demo.example.com]
            tcpRoutes:
            - port: 5432
        managedRoutes:
        - name: header
        - name: mirror
      analysis:
        startingStep: 2
        templates:
        - templateName: success-rate
        args:
        - name: hash
          valueFrom:
            podTemplateHashValue: Latest
      steps:
      - setWeight: 20
      - pause: {}
      - pause: {duration: 5m}
      - pause: {duration: 300}
      - analysis:
          templates:
          - templateName: success-rate
          - templateName: global-errors
            clusterScope: true
          args:
          - name: service-name
            value: demo-canary
          - name: app
            valueFrom:
              fieldRef:
                fieldPath: metadata.labels['app']
      - setCanaryScale: {replicas: 3}
      - setCanaryScale: {weight: 40}
      - setCanaryScale: {matchTrafficWeight: true}
      - setHeaderRoute:
          name: header
          match:
          - headerName: x-canary
            headerValue: {exact: "yes"}
          - headerName: user-agent
            headerValue: {regex: ".*Chrome.*"}
      - setMirrorRoute:
          name: mirror
          percentage: 35
          match:
          - method: {exact: GET}
            path: {prefix: /}
            headers:
              x-tenant: {prefix: beta-}
"#;

fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
    sluice_crds::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn reject<T: serde::de::DeserializeOwned + std::fmt::Debug>(yaml: &str) {
    let parsed = sluice_crds::from_yaml::<T>(yaml);
    assert!(
        parsed.is_err(),
        "{yaml:?} should be rejected, got {parsed:?}"
    );
}

#[test]
fn canary_steps_parse_into_enum_variants() {
    let ro: Rollout = parse(CANARY);
    let Strategy::Canary(canary) = &ro.spec.strategy else {
        panic!("canary expected")
    };
    let steps = &canary.steps;
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[0], CanaryStep::SetWeight(Weight::new(20).unwrap()));
    let pause = |i: usize| match &steps[i] {
        CanaryStep::Pause(p) => p.duration.map(|d| d.get()),
        other => panic!("pause expected, got {other:?}"),
    };
    assert_eq!(pause(1), None);
    assert_eq!(pause(2), Some(StdDuration::from_secs(300)));
    assert_eq!(pause(3), Some(StdDuration::from_secs(300)));
    let CanaryStep::Analysis(analysis) = &steps[4] else {
        panic!()
    };
    assert!(analysis.templates[1].cluster_scope);
    assert_eq!(
        analysis.args[1].value_from,
        Some(ValueFrom::FieldRef(sluice_crds::FieldRef {
            field_path: "metadata.labels['app']".into()
        }))
    );
    assert!(
        matches!(&steps[5], CanaryStep::SetCanaryScale(SetCanaryScale::Replicas(n)) if n.get() == 3)
    );
    assert!(
        matches!(&steps[6], CanaryStep::SetCanaryScale(SetCanaryScale::Weight(w)) if w.get() == 40)
    );
    assert!(matches!(
        &steps[7],
        CanaryStep::SetCanaryScale(SetCanaryScale::MatchTrafficWeight(true))
    ));
    let CanaryStep::SetHeaderRoute(header) = &steps[8] else {
        panic!()
    };
    assert_eq!(
        header.matches[1].header_value,
        StringMatch::Regex(".*Chrome.*".into())
    );
    let CanaryStep::SetMirrorRoute(mirror) = &steps[9] else {
        panic!()
    };
    assert_eq!(mirror.percentage, Weight::new(35));
    assert_eq!(
        mirror.matches[0].headers["x-tenant"],
        StringMatch::Prefix("beta-".into())
    );
    let background = canary.analysis.as_ref().unwrap();
    assert_eq!(background.starting_step, Some(2));
    assert_eq!(
        background.analysis.args[0].value_from,
        Some(ValueFrom::PodTemplateHashValue(
            PodTemplateHashValue::Latest
        ))
    );
    assert_eq!(
        canary.max_surge.as_ref().and_then(|s| s.resolve(5, true)),
        Some(2)
    );
    assert!(
        canary
            .max_unavailable
            .as_ref()
            .is_some_and(IntOrPercent::is_zero)
    );
    let istio = &canary.traffic_routing.as_ref().unwrap().istio;
    let vs: Vec<_> = istio
        .all_virtual_services()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(vs, ["demo"]);
    assert!(!istio.is_subset_level());
}

#[test]
fn canary_round_trips_in_argo_shape() {
    let ro: Rollout = parse(CANARY);
    let json = serde_json::to_value(&ro).unwrap();
    // Steps keep the single-key-map shape; durations come back as canonical strings.
    let steps = &json["spec"]["strategy"]["canary"]["steps"];
    assert_eq!(steps[0], json!({"setWeight": 20}));
    assert_eq!(steps[1], json!({"pause": {}}));
    assert_eq!(steps[2], json!({"pause": {"duration": "5m"}}));
    assert_eq!(steps[3], json!({"pause": {"duration": "5m"}}));
    assert_eq!(
        steps[7],
        json!({"setCanaryScale": {"matchTrafficWeight": true}})
    );
    assert_eq!(json["apiVersion"], "sluice.dev/v1alpha1");
    assert_eq!(json["kind"], "Rollout");
    // And the YAML text parses back to the same value.
    let again: Rollout = parse(&sluice_crds::to_yaml(&ro).unwrap());
    assert_eq!(again, ro);
}

#[test]
fn strategy_is_externally_tagged() {
    let bg: Strategy = parse("blueGreen: {activeService: web, previewService: web-preview}");
    let Strategy::BlueGreen(b) = &bg else {
        panic!()
    };
    assert!(
        b.auto_promotion_enabled,
        "autoPromotionEnabled defaults to true"
    );
    assert_eq!(
        serde_json::to_value(&bg).unwrap(),
        json!({"blueGreen": {"activeService": "web", "previewService": "web-preview", "autoPromotionEnabled": true}})
    );
    reject::<Strategy>("{canary: {}, blueGreen: {activeService: a}}");
}

#[test]
fn deserialization_refuses_what_the_api_server_refuses() {
    reject::<CanaryStep>("setWeight: 120");
    reject::<CanaryStep>("{setWeight: 20, pause: {}}");
    reject::<CanaryStep>("pause: {duration: -5}");
    reject::<CanaryStep>("pause: {duration: 5 minutes}");
    reject::<CanaryStep>("experiment: {}");
}

#[test]
fn analysis_template_with_sluice_additions() {
    let at: AnalysisTemplate = parse(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args:
  - name: service-name
  - name: token
    valueFrom:
      secretKeyRef: {name: prom, key: token}
  dryRun:
  - metricName: latency
  measurementRetention:
  - metricName: ".*"
    limit: 20
  metrics:
  - name: success
    interval: 30s
    count: 4
    successCondition: result[0] >= 0.99
    failureLimit: -1
    onNaN: inconclusive
    minSamples: 2
    provider:
      prometheus:
        address: http://prom:9090
        query: up
        timeout: 5
        headers: [{key: X-Org, value: a}]
        authentication:
          basic:
            username: sluice
            passwordSecretKeyRef: {name: prom, key: password}
  - name: latency
    judge:
      mannWhitney:
        canaryQuery: a
        baselineQuery: b
        direction: increase
        alpha: 0.05
        margin: 0.1
        window: 5m
    provider:
      prometheus: {address: http://prom:9090}
"#,
    );
    let m = &at.spec.metrics[0];
    assert_eq!(
        m.on_empty,
        NoDataPolicy::Fail,
        "no data fails unless told otherwise"
    );
    assert_eq!(m.on_nan, NoDataPolicy::Inconclusive);
    assert!(m.failure_limit.unwrap().get() == -1);
    assert_eq!(m.effective_count(), Some(4));
    assert_eq!(
        m.provider.prometheus().timeout.unwrap().get(),
        StdDuration::from_secs(5)
    );
    assert!(matches!(
        at.spec.metrics[1].judge,
        Some(Judge::MannWhitney(_))
    ));
    assert_eq!(at.spec.metrics[1].effective_count(), Some(1));
    let again: AnalysisTemplate = parse(&sluice_crds::to_yaml(&at).unwrap());
    assert_eq!(again, at);
}

#[test]
fn empty_status_serializes_to_nothing() {
    assert_eq!(
        serde_json::to_value(RolloutStatus::default()).unwrap(),
        json!({})
    );
    let status: RolloutStatus = parse(
        r#"
phase: Paused
stableRS: abc123
currentStepIndex: 1
abort: true
canary:
  weights:
    canary: {weight: 20, podTemplateHash: def456, serviceName: demo-canary}
    stable: {weight: 80, podTemplateHash: abc123}
    verified: true
pauseConditions:
- reason: CanaryPauseStep
  startTime: "2026-01-02T03:04:05Z"
conditions:
- type: Progressing
  status: "True"
  reason: ReplicaSetUpdated
  message: ""
  lastUpdateTime: "2026-01-02T03:04:05Z"
  lastTransitionTime: "2026-01-02T03:04:05Z"
"#,
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["stableRS"], "abc123");
    assert_eq!(json["canary"]["weights"]["canary"]["weight"], 20);
    assert_eq!(
        json["conditions"][0]["lastTransitionTime"],
        "2026-01-02T03:04:05Z"
    );
    assert!(json.get("promoteFull").is_none(), "false flags are omitted");
}

/// Every Sluice object in `examples/` parses into its Rust type and round-trips.
#[test]
fn examples_parse_into_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let ctx = path.display();
        for value in sluice_crds::yaml::documents(&text).unwrap() {
            if value["apiVersion"] != "sluice.dev/v1alpha1" {
                continue;
            }
            match value["kind"].as_str().unwrap() {
                "Rollout" => round_trip::<Rollout>(value, &ctx),
                "AnalysisTemplate" => round_trip::<AnalysisTemplate>(value, &ctx),
                "ClusterAnalysisTemplate" => round_trip::<ClusterAnalysisTemplate>(value, &ctx),
                other => panic!("{ctx}: unexpected kind {other}"),
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "expected the five example Sluice objects, saw {seen}"
    );
}

fn round_trip<T>(value: serde_json::Value, ctx: &dyn std::fmt::Display)
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    // serde ignores unknown fields, so check that no field of the manifest was dropped (a
    // misspelt rename would otherwise pass silently).
    assert_keys_kept(
        &value,
        &serde_json::to_value(&typed).unwrap(),
        &format!("{ctx}: "),
    );
    let again: T = parse(&sluice_crds::to_yaml(&typed).unwrap());
    assert_eq!(again, typed, "{ctx}");
}

fn assert_keys_kept(original: &serde_json::Value, typed: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    panic!("{path}{k} was dropped by the Rust types")
                };
                assert_keys_kept(v, w, &format!("{path}{k}."));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                assert_keys_kept(v, w, &format!("{path}{i}."));
            }
        }
        _ => {}
    }
}

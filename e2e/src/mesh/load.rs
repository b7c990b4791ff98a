//! How much traffic a VirtualService or a Service gets and which headers it carries, read from
//! the `sim.sluice.dev/*` annotations on the object.
//!
//! A VirtualService always gets traffic (`--rps` unless annotated). A Service gets traffic of its
//! own only when it carries the rate annotation: most Services sit behind a VirtualService, and
//! sending to them directly as well would put traffic where a test expects none.

use std::collections::BTreeMap;

/// Requests per second sent to each host of the VirtualService (overrides `--rps`), or sent
/// straight to the Service it annotates.
pub const RPS: &str = "sim.sluice.dev/rps";
/// Headers that a share of requests carry: `name=value:share[,name=value:share...]`, e.g.
/// `x-canary=true:0.05`. Each header is drawn independently per request.
pub const HEADER_SHARE: &str = "sim.sluice.dev/header-share";

/// Upper bound on any host's rate: the simulator shares two cores with builds and tests, and
/// every request is a few label lookups, so this keeps one tick well under its 100 ms budget.
pub const MAX_RPS: f64 = 10_000.0;

/// A header carried by a share of the requests.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderShare {
    /// Lower case, as Envoy sees header names.
    pub name: String,
    pub value: String,
    pub share: f64,
}

/// The load for one VirtualService.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub rps: f64,
    pub headers: Vec<HeaderShare>,
}

impl Load {
    /// Reads the annotations, falling back to `default_rps`.
    ///
    /// Guarantees: a malformed value never stops the simulator; it keeps the default (or drops
    /// that header) and is described in the returned problems.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        default_rps: f64,
    ) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let rps = match annotations.get(RPS) {
            None => default_rps,
            Some(raw) => parse_rps(raw).unwrap_or_else(|| {
                problems.push(bad_rps(raw));
                default_rps
            }),
        };
        let headers = annotations
            .get(HEADER_SHARE)
            .map(|raw| parse_header_shares(raw, &mut problems))
            .unwrap_or_default();
        (Self { rps, headers }, problems)
    }
}

/// The rate of requests sent straight to a Service, by its selector: `None` when the Service has
/// no [`RPS`] annotation.
///
/// Guarantees: a malformed value falls back to `default_rps` (the Service asked for traffic; a
/// typo should not silently turn it off) and is described in the returned problems.
pub fn service_rps(
    annotations: &BTreeMap<String, String>,
    default_rps: f64,
) -> (Option<f64>, Vec<String>) {
    let Some(raw) = annotations.get(RPS) else {
        return (None, Vec::new());
    };
    match parse_rps(raw) {
        Some(rps) => (Some(rps), Vec::new()),
        None => (Some(default_rps), vec![bad_rps(raw)]),
    }
}

fn bad_rps(raw: &str) -> String {
    format!("annotation {RPS}: {raw:?} is not a rate in 0..={MAX_RPS}")
}

fn parse_rps(raw: &str) -> Option<f64> {
    let rps = raw.trim().parse::<f64>().ok()?;
    (0.0..=MAX_RPS).contains(&rps).then_some(rps)
}

fn parse_header_shares(raw: &str, problems: &mut Vec<String>) -> Vec<HeaderShare> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let parsed = parse_header_share(entry);
            if parsed.is_none() {
                problems.push(format!(
                    "annotation {HEADER_SHARE}: {entry:?} is not name=value:share with share in 0..=1"
                ));
            }
            parsed
        })
        .collect()
}

fn parse_header_share(entry: &str) -> Option<HeaderShare> {
    // The share is after the last colon, so a value may itself contain colons.
    let (header, share) = entry.rsplit_once(':')?;
    let (name, value) = header.split_once('=')?;
    let share = share.trim().parse::<f64>().ok()?;
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty() && (0.0..=1.0).contains(&share);
    valid.then(|| HeaderShare {
        name,
        value: value.trim().to_owned(),
        share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_rate_and_no_headers() {
        let (load, problems) = Load::from_annotations(&BTreeMap::new(), 200.0);
        assert_eq!(
            load,
            Load {
                rps: 200.0,
                headers: vec![]
            }
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn rate_and_headers_from_annotations() {
        let (load, problems) = Load::from_annotations(
            &annotations(&[
                (RPS, "50"),
                (HEADER_SHARE, "X-Canary=true:0.05, x-url=http://a:b:1"),
            ]),
            200.0,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(load.rps, 50.0);
        assert_eq!(
            load.headers,
            vec![
                HeaderShare {
                    name: "x-canary".into(),
                    value: "true".into(),
                    share: 0.05
                },
                HeaderShare {
                    name: "x-url".into(),
                    value: "http://a:b".into(),
                    share: 1.0
                },
            ]
        );
    }

    #[test]
    fn a_service_gets_direct_traffic_only_when_annotated() {
        assert_eq!(service_rps(&BTreeMap::new(), 200.0), (None, vec![]));
        assert_eq!(
            service_rps(&annotations(&[(RPS, " 20 ")]), 200.0),
            (Some(20.0), vec![])
        );
        let (rps, problems) = service_rps(&annotations(&[(RPS, "-1")]), 200.0);
        assert_eq!(rps, Some(200.0), "a typo keeps the default rate");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn malformed_values_are_reported_and_ignored() {
        let (load, problems) = Load::from_annotations(
            &annotations(&[
                (RPS, "1e9"),
                (HEADER_SHARE, "x-canary:0.5,=v:0.1,x=y:2,ok=1:0.5"),
            ]),
            200.0,
        );
        assert_eq!(load.rps, 200.0);
        assert_eq!(load.headers.len(), 1);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}

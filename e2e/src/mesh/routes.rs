//! A VirtualService's http routes as the data plane sees them, and the two decisions Envoy makes
//! per request: which route (the first whose match holds) and which destination (by weight).

use serde_json::Value;

use super::matching::{MatchRule, Request, any_holds};

/// Where a route sends a request: a host (usually a Service name) and an optional subset of a
/// DestinationRule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WeightedDestination {
    pub destination: Destination,
    pub weight: u32,
}

/// One entry of `spec.http`.
#[derive(Clone, Debug)]
pub struct HttpRoute {
    pub name: Option<String>,
    pub matches: Vec<MatchRule>,
    pub destinations: Vec<WeightedDestination>,
    pub mirror: Option<Destination>,
    /// Percentage (0..=100) of the route's requests copied to `mirror`.
    pub mirror_percent: f64,
}

/// Parses `spec.http` of a VirtualService. Entries that are not objects are skipped; a route
/// without destinations (a redirect or direct response) is kept, so that it still captures its
/// requests the way Envoy would, but it sends them nowhere this simulator can report.
pub fn parse_http_routes(spec: &Value) -> Vec<HttpRoute> {
    let Some(http) = spec.get("http").and_then(Value::as_array) else {
        return Vec::new();
    };
    http.iter()
        .filter(|r| r.is_object())
        .map(parse_route)
        .collect()
}

fn parse_route(route: &Value) -> HttpRoute {
    let matches = route
        .get("match")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(MatchRule::parse).collect())
        .unwrap_or_default();
    let entries = route.get("route").and_then(Value::as_array);
    let destinations = entries.map(|e| parse_destinations(e)).unwrap_or_default();
    HttpRoute {
        name: route.get("name").and_then(Value::as_str).map(str::to_owned),
        matches,
        destinations,
        mirror: route.get("mirror").and_then(parse_destination),
        mirror_percent: mirror_percent(route),
    }
}

/// Istio's weight rules: a lone destination takes everything whatever its weight; with several,
/// a missing weight is 0.
fn parse_destinations(entries: &[Value]) -> Vec<WeightedDestination> {
    let lone = entries.len() == 1;
    entries
        .iter()
        .filter_map(|entry| {
            let destination = parse_destination(entry.get("destination")?)?;
            let weight = entry.get("weight").and_then(Value::as_u64).unwrap_or(0);
            let weight = if lone {
                100
            } else {
                u32::try_from(weight).unwrap_or(u32::MAX)
            };
            Some(WeightedDestination {
                destination,
                weight,
            })
        })
        .collect()
}

fn parse_destination(value: &Value) -> Option<Destination> {
    Some(Destination {
        host: value.get("host")?.as_str()?.to_owned(),
        subset: value
            .get("subset")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `mirrorPercentage.value` wins over the deprecated integer `mirrorPercent`; with neither,
/// Istio mirrors every request.
fn mirror_percent(route: &Value) -> f64 {
    let percentage = route
        .pointer("/mirrorPercentage/value")
        .and_then(Value::as_f64);
    let legacy = route.get("mirrorPercent").and_then(Value::as_f64);
    percentage.or(legacy).unwrap_or(100.0).clamp(0.0, 100.0)
}

/// The route Envoy would use: the first whose match list holds.
pub fn select_route<'a>(routes: &'a [HttpRoute], request: &Request) -> Option<&'a HttpRoute> {
    routes
        .iter()
        .find(|route| any_holds(&route.matches, request))
}

/// The destination for a uniform draw `u` in `[0, 1)`: destination `i` wins when `u` falls in
/// its slice of the cumulative weights. `None` when every weight is 0 (nothing to route to).
pub fn pick_weighted(destinations: &[WeightedDestination], u: f64) -> Option<&Destination> {
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if total == 0 {
        return None;
    }
    // Compare in integer space so weight 0 can never win, whatever the float rounding.
    let target = ((u * total as f64) as u64).min(total - 1);
    let mut cumulative = 0;
    destinations.iter().find_map(|d| {
        cumulative += u64::from(d.weight);
        (target < cumulative).then_some(&d.destination)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(host: &str, weight: Option<u64>) -> Value {
        let mut entry = json!({"destination": {"host": host}});
        if let Some(weight) = weight {
            entry["weight"] = json!(weight);
        }
        entry
    }

    fn spec() -> Value {
        json!({"http": [
            {
                "name": "header",
                "match": [{"headers": {"x-canary": {"exact": "true"}}}],
                "route": [entry("canary", None)],
            },
            {
                "name": "mirror",
                "match": [{"uri": {"prefix": "/mirror"}}],
                "route": [entry("stable", Some(100)), entry("canary", Some(0))],
                "mirror": {"host": "canary", "subset": "v2"},
                "mirrorPercentage": {"value": 25.0},
            },
            {
                "name": "primary",
                "route": [entry("stable", Some(80)), entry("canary", Some(20)), entry("x", None)],
            },
        ]})
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Request::default()
        }
    }

    fn host(d: Option<&Destination>) -> Option<&str> {
        d.map(|d| d.host.as_str())
    }

    #[test]
    fn parses_weights_mirror_and_names() {
        let routes = parse_http_routes(&spec());
        assert_eq!(routes.len(), 3);
        assert_eq!(
            routes[0].destinations[0].weight, 100,
            "a lone destination takes all"
        );
        assert_eq!(
            routes[1].mirror.as_ref().unwrap().subset.as_deref(),
            Some("v2")
        );
        assert_eq!(routes[1].mirror_percent, 25.0);
        let weights: Vec<u32> = routes[2].destinations.iter().map(|d| d.weight).collect();
        assert_eq!(weights, [80, 20, 0], "a missing weight among several is 0");
        assert_eq!(routes[2].mirror, None);
    }

    #[test]
    fn mirror_percent_defaults_to_all_and_reads_the_legacy_field() {
        assert_eq!(mirror_percent(&json!({})), 100.0);
        assert_eq!(mirror_percent(&json!({"mirrorPercent": 10})), 10.0);
        assert_eq!(
            mirror_percent(&json!({"mirrorPercentage": {"value": 150.0}})),
            100.0
        );
    }

    #[test]
    fn first_matching_route_wins_else_the_default() {
        let routes = parse_http_routes(&spec());
        let name = |r: &Request| select_route(&routes, r).and_then(|r| r.name.clone());
        assert_eq!(
            name(&request("/", &[("x-canary", "true")])).as_deref(),
            Some("header")
        );
        let both = request("/mirror", &[("x-canary", "true")]);
        assert_eq!(name(&both).as_deref(), Some("header"), "order decides");
        assert_eq!(name(&request("/mirror", &[])).as_deref(), Some("mirror"));
        assert_eq!(
            name(&request("/", &[("x-canary", "no")])).as_deref(),
            Some("primary")
        );
    }

    #[test]
    fn no_route_when_nothing_matches() {
        let routes = parse_http_routes(&json!({"http": [
            {"match": [{"uri": {"exact": "/only"}}], "route": [entry("a", None)]}
        ]}));
        assert!(select_route(&routes, &request("/", &[])).is_none());
        assert!(parse_http_routes(&json!({"tcp": []})).is_empty());
    }

    #[test]
    fn weighted_choice_follows_cumulative_slices() {
        let routes = parse_http_routes(&spec());
        let split = &routes[2].destinations;
        assert_eq!(host(pick_weighted(split, 0.0)), Some("stable"));
        assert_eq!(host(pick_weighted(split, 0.7999)), Some("stable"));
        assert_eq!(host(pick_weighted(split, 0.8)), Some("canary"));
        assert_eq!(
            host(pick_weighted(split, 0.999_999_999)),
            Some("canary"),
            "weight 0 never"
        );
    }

    #[test]
    fn weighted_choice_with_zero_weights_routes_nowhere() {
        let zero = parse_destinations(&[entry("a", Some(0)), entry("b", None)]);
        assert_eq!(pick_weighted(&zero, 0.5), None);
        assert_eq!(pick_weighted(&[], 0.5), None);
    }

    #[test]
    fn weighted_choice_proportions_over_a_grid() {
        let routes = parse_http_routes(&spec());
        let split = &routes[2].destinations;
        let canary = (0..10_000)
            .filter(|i| host(pick_weighted(split, f64::from(*i) / 10_000.0)) == Some("canary"))
            .count();
        assert_eq!(canary, 2_000);
    }
}

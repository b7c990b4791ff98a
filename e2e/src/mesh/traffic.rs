//! Request generation: every tick, each VirtualService host gets its share of requests; each
//! request picks a route, a destination by weight, a pod by round robin, and an answer from the
//! pod's behaviour. Each directly called Service gets its share too, sent to the pods its
//! selector picks at that tick. Results go to a [`Sink`] (the Istio metrics in the binary, a list
//! in tests).
//!
//! Deterministic: for a given world sequence and seed, the same requests get the same answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::load::HeaderShare;
use super::matching::Request;
use super::routes::{Destination, pick_weighted, select_route};
use super::world::{
    Backends, PodInfo, ServiceLoad, ServiceRef, Target, UNKNOWN, VirtualServiceInfo, World,
};

/// Envoy's response flag for a request, bounded to the three cases the simulator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseFlags {
    /// Answered by a pod (`-`).
    None,
    /// No healthy upstream: the destination has no ready pod (`UH`).
    NoHealthyUpstream,
    /// No cluster: the host is not a Service, or the subset is not defined (`NC`).
    NoCluster,
}

impl ResponseFlags {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::NoHealthyUpstream => "UH",
            Self::NoCluster => "NC",
        }
    }
}

/// One request's result at a destination, as the metrics describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub service: ServiceRef,
    /// `unknown` when no pod answered.
    pub workload: Arc<str>,
    pub version: Arc<str>,
    pub code: u16,
    pub flags: ResponseFlags,
    pub latency_ms: f64,
    pub mirrored: bool,
}

/// Where results go.
pub trait Sink {
    fn record(&mut self, report: &Report);
    /// A request no route accepted (Envoy's 404 `NR`), or whose route sends nowhere.
    fn unrouted(&mut self);
}

/// Where a stream of requests comes from, for pacing: a VirtualService host or a Service
/// called directly.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum OwedKey {
    Host {
        namespace: String,
        virtual_service: String,
        host: String,
    },
    Service {
        namespace: String,
        name: String,
    },
}

/// Destinations resolved during one tick. The world does not change within a tick, so each
/// destination is resolved once instead of once per request.
struct Targets<'w> {
    world: &'w World,
    resolved: BTreeMap<(&'w str, &'w Destination), Target<'w>>,
}

impl<'w> Targets<'w> {
    fn new(world: &'w World) -> Self {
        Self {
            world,
            resolved: BTreeMap::new(),
        }
    }

    fn get(&mut self, destination: &'w Destination, namespace: &'w str) -> &Target<'w> {
        self.resolved
            .entry((namespace, destination))
            .or_insert_with(|| self.world.resolve(destination, namespace))
    }
}

/// The generator's state between ticks.
pub struct Generator {
    rng: StdRng,
    tick: Duration,
    /// Fractional requests owed per VirtualService host or directly called Service, so a rate
    /// that is not a multiple of the tick rate (5 rps at 10 ticks/s) is still met on average.
    owed: BTreeMap<OwedKey, f64>,
    /// Next pod index per resolved destination, Envoy's round-robin balancer.
    next_pod: BTreeMap<(ServiceRef, Option<String>), usize>,
}

impl Generator {
    pub fn new(seed: u64, tick: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            tick,
            owed: BTreeMap::new(),
            next_pod: BTreeMap::new(),
        }
    }

    /// Sends one tick's requests through `world`; returns how many were generated.
    pub fn tick(&mut self, world: &World, sink: &mut impl Sink) -> u64 {
        let mut targets = Targets::new(world);
        let mut owed = BTreeMap::new();
        let mut generated = 0;
        for vs in &world.virtual_services {
            for host in &vs.hosts {
                let key = OwedKey::Host {
                    namespace: vs.namespace.clone(),
                    virtual_service: vs.name.clone(),
                    host: host.clone(),
                };
                let count = self.due(&key, vs.load.rps, &mut owed);
                for _ in 0..count {
                    let request = self.draw_request(host, &vs.load.headers);
                    self.send(&mut targets, vs, &request, sink);
                }
                generated += count;
            }
        }
        for load in &world.service_loads {
            generated += self.call_service(&mut targets, load, &mut owed, sink);
        }
        // Replacing the map drops entries of VirtualServices, hosts and Services that went away.
        self.owed = owed;
        generated
    }

    /// Sends one tick's requests straight to a Service: no route to match, the Service's
    /// selector alone picks the pods (read this tick, so a selector change applies at once).
    fn call_service<'w>(
        &mut self,
        targets: &mut Targets<'w>,
        load: &'w ServiceLoad,
        owed: &mut BTreeMap<OwedKey, f64>,
        sink: &mut impl Sink,
    ) -> u64 {
        let key = OwedKey::Service {
            namespace: load.namespace.clone(),
            name: load.destination.host.clone(),
        };
        let count = self.due(&key, load.rps, owed);
        for _ in 0..count {
            let target = targets.get(&load.destination, &load.namespace);
            let report = self.answer(target, &load.destination, false);
            sink.record(&report);
        }
        count
    }

    /// Whole requests due this tick at `rps`; the fraction left over is owed to the next tick.
    fn due(&self, key: &OwedKey, rps: f64, owed: &mut BTreeMap<OwedKey, f64>) -> u64 {
        let carried = self.owed.get(key).copied().unwrap_or(0.0);
        let due = carried + rps * self.tick.as_secs_f64();
        let count = due.floor();
        owed.insert(key.clone(), due - count);
        count as u64
    }

    fn draw_request(&mut self, host: &str, headers: &[HeaderShare]) -> Request {
        let mut request = Request {
            authority: host.to_owned(),
            method: "GET".to_owned(),
            path: "/".to_owned(),
            headers: BTreeMap::new(),
        };
        for header in headers {
            if self.rng.random::<f64>() < header.share {
                request
                    .headers
                    .insert(header.name.clone(), header.value.clone());
            }
        }
        request
    }

    fn send<'w>(
        &mut self,
        targets: &mut Targets<'w>,
        vs: &'w VirtualServiceInfo,
        request: &Request,
        sink: &mut impl Sink,
    ) {
        let Some(route) = select_route(&vs.routes, request) else {
            return sink.unrouted();
        };
        let Some(destination) = pick_weighted(&route.destinations, self.rng.random()) else {
            return sink.unrouted();
        };
        let report = self.answer(targets.get(destination, &vs.namespace), destination, false);
        sink.record(&report);
        if let Some(mirror) = &route.mirror
            && self.rng.random::<f64>() * 100.0 < route.mirror_percent
        {
            // Envoy fires a shadow copy and forgets it: a copy that finds no pod reaches no
            // proxy that could report it, so only answered copies are recorded.
            let target = targets.get(mirror, &vs.namespace);
            if matches!(target.backends, Backends::Ready(_)) {
                sink.record(&self.answer(target, mirror, true));
            }
        }
    }

    fn answer(&mut self, target: &Target, destination: &Destination, mirrored: bool) -> Report {
        let failed = |version: Option<&str>, flags| Report {
            service: target.service.clone(),
            workload: UNKNOWN.into(),
            version: version.unwrap_or(UNKNOWN).into(),
            code: 503,
            flags,
            // Envoy answers these locally, without an upstream round trip.
            latency_ms: 0.0,
            mirrored,
        };
        match &target.backends {
            Backends::Ready(pods) => {
                let pod = self.next(target, destination, pods);
                let answer = pod.behaviour.answer(&mut self.rng);
                Report {
                    service: target.service.clone(),
                    workload: pod.workload.clone(),
                    version: pod.version.clone(),
                    code: answer.code,
                    flags: ResponseFlags::None,
                    latency_ms: answer.latency_ms,
                    mirrored,
                }
            }
            Backends::NoHealthyUpstream { version } => {
                failed(version.as_deref(), ResponseFlags::NoHealthyUpstream)
            }
            Backends::NoCluster => failed(None, ResponseFlags::NoCluster),
        }
    }

    /// Round robin over the destination's ready pods. The index survives pods coming and going
    /// (it is taken modulo the current count), which is all Envoy promises too.
    fn next<'w>(
        &mut self,
        target: &Target,
        destination: &Destination,
        pods: &[&'w PodInfo],
    ) -> &'w PodInfo {
        let key = (target.service.clone(), destination.subset.clone());
        let index = self.next_pod.entry(key).or_insert(0);
        let pod = pods[*index % pods.len()];
        *index = index.wrapping_add(1);
        pod
    }
}

#[cfg(test)]
mod tests;

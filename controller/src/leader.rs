//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the holder of the Lease reconciles. Renewals are optimistic writes guarded by the
//! Lease's resourceVersion, so two replicas can never both believe they renewed.
//!
//! Guarantees:
//! - [`Elector::run`] returns as soon as leadership is lost (a renewal not confirmed within the
//!   renew deadline). The caller must stop reconciling at once: Sluice exits, so an old leader
//!   never keeps writing after its lease expired (the failure of argo-rollouts#2117).
//! - [`Elector::release`] clears the holder on a clean shutdown so a successor takes over
//!   without waiting out the lease.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, PostParams};
use sluice_analysis::time::{from_api, to_api};

/// Timing of the election (Argo Rollouts' defaults: 15 s lease, 10 s renew deadline, 2 s retry).
#[derive(Clone, Debug)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: String,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity,
            timing,
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or write the Lease")
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Keeps renewing; returns when leadership is lost: someone else holds the Lease, or no
    /// renewal was confirmed within the renew deadline. A renewal request still unanswered at
    /// the deadline is abandoned (an API server that hangs must not keep an old leader writing).
    pub async fn run(&self) {
        // Counted from the moment the last confirmed renewal was *sent*: the Lease says
        // `renewTime` = then, and the other replicas count from there.
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = last_renewed + self.timing.renew_deadline;
            let sent = tokio::time::Instant::now();
            match tokio::time::timeout_at(deadline, self.try_hold()).await {
                Ok(Ok(true)) => last_renewed = sent,
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
                Err(_) => {
                    tracing::warn!("leader election: no renewal confirmed within the deadline");
                    return;
                }
            }
            if last_renewed.elapsed() > self.timing.renew_deadline {
                return;
            }
        }
    }

    /// Gives the Lease up (clean shutdown).
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "leader election: could not release the Lease");
        }
    }

    /// Takes or renews the Lease if it is ours or expired. `Ok(false)`: someone else holds it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(to_api(Utc::now()).0);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return self.create(now).await;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let ours = spec.holder_identity.as_deref() == Some(&self.identity);
        if !ours && !expired(spec, &self.timing) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(secs(self.timing.lease_duration));
        spec.renew_time = Some(now);
        // `replace` carries the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, now: MicroTime) -> Result<bool, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(secs(self.timing.lease_duration)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// A Lease with no holder, or not renewed within its duration, may be taken.
fn expired(spec: &LeaseSpec, timing: &Timing) -> bool {
    let Some(holder) = spec.holder_identity.as_deref() else {
        return true;
    };
    if holder.is_empty() {
        return true;
    }
    let duration = spec
        .lease_duration_seconds
        .map_or(timing.lease_duration, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let Some(MicroTime(renewed)) = spec.renew_time.clone() else {
        return true;
    };
    let age = (Utc::now() - from_api(&Time(renewed)))
        .to_std()
        .unwrap_or(Duration::ZERO);
    age > duration
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_ago: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(
                to_api(Utc::now() - chrono::Duration::seconds(renewed_ago)).0,
            )),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    /// An API server that accepts connections and never answers.
    async fn silent_client() -> kube::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let uri = format!("http://{addr}").parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("client")
    }

    #[tokio::test]
    async fn a_renewal_the_api_server_never_answers_ends_leadership_at_the_deadline() {
        let timing = Timing {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_millis(300),
            retry_period: Duration::from_millis(50),
        };
        let elector = Elector::new(silent_client().await, "ns", "lease", "me".into(), timing);
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), elector.run())
            .await
            .expect("run returns when the renew deadline passes");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_lease_is_free_when_unheld_or_not_renewed_in_time() {
        let t = Timing::default();
        assert!(expired(&spec(None, 0, 15), &t));
        assert!(expired(&spec(Some(""), 0, 15), &t));
        assert!(expired(&spec(Some("a"), 16, 15), &t));
        assert!(!expired(&spec(Some("a"), 3, 15), &t));
    }
}

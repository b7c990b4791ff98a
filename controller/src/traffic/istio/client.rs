//! The I/O shell of the Istio router: read the object, render a patch with the pure core, send
//! it as a guarded JSON patch under field manager `sluice`, and check what the server stored.
//!
//! Caveats: a read-back that still differs from the desired state (someone wrote right after us)
//! and a failed `test` operation are both retried after a fresh read, at most [`READS`] reads per
//! object; after that the caller gets [`TrafficError::Conflict`] and requeues.

use std::future::Future;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::core::Status;
use serde_json::Value;

use super::config::{IstioConfig, VirtualServiceRef};
use super::{destination_rule, virtual_service};
use crate::traffic::{DesiredTraffic, ObservedTraffic, TrafficError, TrafficRouter};

pub use crate::FIELD_MANAGER;

/// Reads of one object per `apply`: the first one and up to three re-reads after a conflict.
pub const READS: usize = 4;

const ISTIO_GROUP: &str = "networking.istio.io";
/// The cluster serves v1, v1beta1 and v1alpha3; v1 is the stored, stable version.
const ISTIO_VERSION: &str = "v1";

/// `networking.istio.io/v1` VirtualService, for the dynamic API.
pub fn virtual_service_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(ISTIO_GROUP, ISTIO_VERSION, "VirtualService");
    ApiResource::from_gvk_with_plural(&gvk, "virtualservices")
}

/// `networking.istio.io/v1` DestinationRule, for the dynamic API.
pub fn destination_rule_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(ISTIO_GROUP, ISTIO_VERSION, "DestinationRule");
    ApiResource::from_gvk_with_plural(&gvk, "destinationrules")
}

/// Moves traffic by editing the user's VirtualServices and DestinationRule in place.
#[derive(Clone)]
pub struct IstioRouter {
    client: kube::Client,
    config: IstioConfig,
}

impl IstioRouter {
    pub fn new(client: kube::Client, config: IstioConfig) -> Self {
        Self { client, config }
    }

    pub fn config(&self) -> &IstioConfig {
        &self.config
    }

    fn virtual_service(&self, vs_ref: &VirtualServiceRef) -> ObjectHandle {
        let (namespace, name) = vs_ref.namespace_and_name(&self.config.namespace);
        ObjectHandle {
            api: Api::namespaced_with(self.client.clone(), namespace, &virtual_service_resource()),
            name: name.to_owned(),
            label: virtual_service::label(&self.config, vs_ref),
        }
    }

    fn destination_rule(&self) -> Result<ObjectHandle, TrafficError> {
        let rule = destination_rule::configured(&self.config)?;
        let resource = destination_rule_resource();
        Ok(ObjectHandle {
            api: Api::namespaced_with(self.client.clone(), &self.config.namespace, &resource),
            name: rule.name.clone(),
            label: destination_rule::label(&self.config, rule),
        })
    }

    fn check_configured(&self) -> Result<(), TrafficError> {
        if self.config.virtual_services.is_empty() {
            return Err(TrafficError::InvalidReference(
                "no VirtualService is configured".to_owned(),
            ));
        }
        Ok(())
    }
}

impl TrafficRouter for IstioRouter {
    async fn observe(&self) -> Result<ObservedTraffic, TrafficError> {
        self.check_configured()?;
        let subsets = match self.config.destination_rule {
            Some(_) => {
                let rule = self.destination_rule()?.get().await?;
                Some(destination_rule::observe(&self.config, &rule)?)
            }
            None => None,
        };
        let mut observations = Vec::with_capacity(self.config.virtual_services.len());
        for vs_ref in &self.config.virtual_services {
            let object = self.virtual_service(vs_ref).get().await?;
            observations.push(virtual_service::observe(&self.config, vs_ref, &object)?);
        }
        let combined = virtual_service::combine(&observations);
        Ok(ObservedTraffic {
            canary_weight: combined.canary_weight,
            managed_routes: combined.managed_routes,
            subsets,
        })
    }

    /// DestinationRule subsets first, then each VirtualService in order: the planner only moves
    /// a subset whose weight is 0, so the labels must be right before weights point at them.
    async fn apply(&self, desired: &DesiredTraffic) -> Result<(), TrafficError> {
        self.check_configured()?;
        if let Some(hashes) = &desired.subsets {
            let rule = self.destination_rule()?;
            let render = |object: &Value| destination_rule::render(&self.config, object, hashes);
            rule.converge(render).await?;
        }
        for vs_ref in &self.config.virtual_services {
            let render =
                |object: &Value| virtual_service::render(&self.config, vs_ref, object, desired);
            self.virtual_service(vs_ref).converge(render).await?;
        }
        Ok(())
    }
}

/// One mesh object: where it lives and how it is named in messages.
pub struct ObjectHandle {
    pub api: Api<DynamicObject>,
    pub name: String,
    /// e.g. `VirtualService shop/web`.
    pub label: String,
}

impl ObjectHandle {
    /// The object as JSON; a missing object is an [`TrafficError::InvalidReference`].
    pub async fn get(&self) -> Result<Value, TrafficError> {
        let object = self
            .api
            .get(&self.name)
            .await
            .map_err(|err| self.classify(err))?;
        to_json(&object)
    }

    /// Sends `patch` as an RFC 6902 JSON patch under [`FIELD_MANAGER`] and returns the stored
    /// object. A failed `test` operation or a version conflict is [`TrafficError::Conflict`] (so
    /// is any other 422, which the server does not tell apart; `apply` sorts that out).
    pub async fn patch(&self, patch: &json_patch::Patch) -> Result<Value, TrafficError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let written = self
            .api
            .patch(&self.name, &params, &kube_json_patch(patch)?)
            .await
            .map_err(|err| self.classify(err))?;
        to_json(&written)
    }

    async fn converge(
        &self,
        render: impl Fn(&Value) -> Result<json_patch::Patch, TrafficError>,
    ) -> Result<(), TrafficError> {
        let result = converge(
            &self.label,
            || self.get(),
            |patch| async move { self.patch(&patch).await },
            render,
        )
        .await;
        if let Err(err) = &result {
            let category = err.category();
            tracing::warn!(object = %self.label, category, error = %err, "traffic update failed");
        }
        result
    }

    fn classify(&self, err: kube::Error) -> TrafficError {
        match &err {
            kube::Error::Api(status) if status.is_not_found() => {
                TrafficError::InvalidReference(format!("{} not found", self.label))
            }
            kube::Error::Api(status) if status.is_conflict() || is_failed_test(status) => {
                TrafficError::Conflict(self.label.clone())
            }
            _ => TrafficError::Api(err),
        }
    }
}

/// A failed JSON-patch `test` is answered with 422 `Invalid` and a generic message ("the server
/// rejected our request due to an error in our request"), the same as a schema rejection; it is
/// taken as a conflict here and told apart in [`converge`] by reading the object again.
fn is_failed_test(status: &Status) -> bool {
    status.is_invalid()
}

/// kube 5.0.0's `Patch::Json` holds the `json_patch` 4.x type while the workspace uses 5.x; the
/// wire format (RFC 6902) is the same, so convert through JSON rather than pin a second version.
pub fn kube_json_patch(patch: &json_patch::Patch) -> Result<Patch<()>, TrafficError> {
    let value = serde_json::to_value(patch)
        .map_err(|err| TrafficError::Api(kube::Error::SerdeError(err)))?;
    let converted = serde_json::from_value(value)
        .map_err(|err| TrafficError::Api(kube::Error::SerdeError(err)))?;
    Ok(Patch::Json(converted))
}

fn to_json(object: &DynamicObject) -> Result<Value, TrafficError> {
    serde_json::to_value(object).map_err(|err| TrafficError::Api(kube::Error::SerdeError(err)))
}

/// Reads, renders and writes one object until a read shows what `render` wants.
///
/// Guarantees: nothing is written when the first read already matches; a write is only counted
/// as done when the object the server returned renders to an empty patch. A conflict (a failed
/// guard) leads to a fresh read, at most [`READS`] reads in all.
///
/// The API server answers a failed `test` with a bare 422 that cannot be told apart from other
/// rejections (schema validation, admission). So after a rejection the object is read again: if
/// it renders to the very same patch, none of the guarded values moved, the rejection was not a
/// concurrent edit, and retrying cannot help.
pub(crate) async fn converge<G, GF, P, PF, R>(
    label: &str,
    get: G,
    patch: P,
    render: R,
) -> Result<(), TrafficError>
where
    G: Fn() -> GF,
    GF: Future<Output = Result<Value, TrafficError>>,
    P: Fn(json_patch::Patch) -> PF,
    PF: Future<Output = Result<Value, TrafficError>>,
    R: Fn(&Value) -> Result<json_patch::Patch, TrafficError>,
{
    let mut rejected: Option<json_patch::Patch> = None;
    for _ in 0..READS {
        let current = get().await?;
        let wanted = render(&current)?;
        if wanted.0.is_empty() {
            return Ok(());
        }
        if rejected.as_ref() == Some(&wanted) {
            return Err(refused(label, &wanted));
        }
        match patch(wanted.clone()).await {
            Ok(written) if render(&written)?.0.is_empty() => return Ok(()),
            Ok(_) => rejected = None,
            Err(TrafficError::Conflict(_)) => rejected = Some(wanted),
            Err(err) => return Err(err),
        }
    }
    Err(TrafficError::Conflict(label.to_owned()))
}

fn refused(label: &str, patch: &json_patch::Patch) -> TrafficError {
    TrafficError::InvalidReference(format!(
        "{label}: the API server rejects the patch {patch} although the object did not change \
         (its schema or an admission webhook refuses it)"
    ))
}

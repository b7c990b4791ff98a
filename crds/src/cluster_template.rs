//! `ClusterAnalysisTemplate`: an [`AnalysisTemplateSpec`] shared by every namespace.
//!
//! kube's `CustomResource` derive makes one kind per spec struct, and deriving it on a copy of
//! the spec would give the controller two unrelated types for the same thing. Instead this
//! module writes the small root type by hand with `spec: AnalysisTemplateSpec`, and derives its
//! CRD from `AnalysisTemplate`'s, changing only names and scope, so the two schemas can never
//! drift apart. Rollouts reference it with `templates[].clusterScope: true`.

use std::borrow::Cow;

use k8s_openapi::{
    ClusterResourceScope,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceDefinitionNames,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    CustomResourceExt, Resource,
    core::{ApiResource, object::HasSpec},
};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeStruct};

use crate::analysis::{AnalysisTemplate, AnalysisTemplateSpec};

const KIND: &str = "ClusterAnalysisTemplate";
const PLURAL: &str = "clusteranalysistemplates";
const CRD_NAME: &str = "clusteranalysistemplates.sluice.dev";

/// Cluster-scoped metric checks, usable from Rollouts in any namespace.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ClusterAnalysisTemplate {
    /// Standard object metadata (no namespace).
    pub metadata: ObjectMeta,
    /// The same spec as a namespaced `AnalysisTemplate`.
    pub spec: AnalysisTemplateSpec,
}

impl ClusterAnalysisTemplate {
    /// Named template with the given spec.
    pub fn new(name: &str, spec: AnalysisTemplateSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }
}

impl Serialize for ClusterAnalysisTemplate {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut obj = ser.serialize_struct(KIND, 4)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", KIND)?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        obj.end()
    }
}

impl Resource for ClusterAnalysisTemplate {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        AnalysisTemplate::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        AnalysisTemplate::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for ClusterAnalysisTemplate {
    type Spec = AnalysisTemplateSpec;

    fn spec(&self) -> &AnalysisTemplateSpec {
        &self.spec
    }

    fn spec_mut(&mut self) -> &mut AnalysisTemplateSpec {
        &mut self.spec
    }
}

impl CustomResourceExt for ClusterAnalysisTemplate {
    fn crd() -> CustomResourceDefinition {
        let mut crd = AnalysisTemplate::crd();
        crd.metadata.name = Some(CRD_NAME.into());
        crd.spec.scope = "Cluster".into();
        crd.spec.names = CustomResourceDefinitionNames {
            kind: KIND.into(),
            plural: PLURAL.into(),
            singular: Some(KIND.to_ascii_lowercase()),
            short_names: Some(Self::shortnames().iter().map(|s| s.to_string()).collect()),
            categories: crd.spec.names.categories.take(),
            list_kind: None,
        };
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                schema.description = Some(
                    "Cluster-scoped metric checks with arguments, usable from Rollouts in any namespace (templates[].clusterScope: true).".into(),
                );
            }
        }
        crd
    }

    fn crd_name() -> &'static str {
        CRD_NAME
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &["scat"]
    }
}

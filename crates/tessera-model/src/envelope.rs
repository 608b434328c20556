//! The ARM resource envelopes shared by every resource type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::ResourceId;

/// A reference to another resource: `{"id": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubResource {
    /// The referenced resource.
    pub id: ResourceId,
}

impl SubResource {
    /// Wraps an id.
    pub fn new(id: ResourceId) -> Self {
        SubResource { id }
    }
}

/// A tracked (top-level) resource: `{id, name, type, location, tags, etag, properties}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracked<P> {
    /// Full resource id.
    pub id: ResourceId,
    /// Resource name (the last id segment).
    #[serde(default)]
    pub name: String,
    /// ARM type string.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Azure region, e.g. `westeurope`.
    #[serde(default)]
    pub location: String,
    /// Resource tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Weak etag, `W/"<guid>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Type-specific properties.
    pub properties: P,
}

/// A child resource embedded in its parent or addressed on its own: `{id, name, type, etag, properties}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Child<P> {
    /// Full id; filled in by the engine when a request leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ResourceId>,
    /// Name, unique within the parent.
    #[serde(default)]
    pub name: String,
    /// ARM type string.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Weak etag (the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Type-specific properties.
    pub properties: P,
    /// What the client sent beside `properties` that Tessera does not model (a frontend's
    /// `zones`), returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

crate::arm_enum! {
    /// `provisioningState` of every resource.
    ProvisioningState {
        /// Done.
        Succeeded = "Succeeded",
        /// A change is being applied.
        Updating = "Updating",
        /// Being deleted.
        Deleting = "Deleting",
        /// Failed.
        Failed = "Failed",
    }
}

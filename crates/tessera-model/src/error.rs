//! The one domain error: an ARM error code, an HTTP status, a message and a target.
//!
//! Every refusal Tessera makes is an [`ArmError`]. The code strings are the ones Azure returns
//! where they are known (see `docs/error-codes.md`); the HTTP status is carried so that the API
//! layer maps errors to responses in one place.

use serde::{Deserialize, Serialize};

/// An ARM error, serialised as the `error` member of ARM's `CloudError` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("({code}) {message}")]
pub struct ArmError {
    /// Stable ARM error code, e.g. `VnetAddressSpacesOverlap`.
    pub code: String,
    /// Human readable explanation.
    pub message: String,
    /// The resource or field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Nested errors (always present on the wire, often empty).
    #[serde(default)]
    pub details: Vec<ArmError>,
    /// The HTTP status the API answers with.
    #[serde(skip)]
    pub status: u16,
}

impl ArmError {
    /// A 400 Bad Request with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::with_status(400, code, message)
    }

    /// An error with any status.
    pub fn with_status(status: u16, code: &str, message: impl Into<String>) -> Self {
        ArmError { code: code.to_string(), message: message.into(), target: None, details: Vec::new(), status }
    }

    /// 404 for a missing child resource of the Network resource provider (`NotFound`).
    pub fn not_found(id: &str) -> Self {
        Self::with_status(404, "NotFound", format!("Resource {id} not found."))
    }

    /// 404 for a missing top-level resource (`ResourceNotFound`), in ARM's wording.
    pub fn resource_not_found(type_and_name: &str, resource_group: &str) -> Self {
        Self::with_status(
            404,
            "ResourceNotFound",
            format!(
                "The Resource '{type_and_name}' under resource group '{resource_group}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// Sets the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The `{"error": {...}}` body.
    pub fn to_body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }
}

/// Shorthand for results carrying an [`ArmError`].
pub type ArmResult<T> = Result<T, ArmError>;

//! Tenants and subscriptions.

use serde::{Deserialize, Serialize};

/// A subscription as `GET /subscriptions/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `/subscriptions/{subscriptionId}`.
    #[serde(default)]
    pub id: String,
    /// The subscription GUID.
    pub subscription_id: String,
    /// The owning tenant.
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// `Enabled`.
    #[serde(default = "enabled")]
    pub state: String,
}

/// The tenant used when a topology names none.
pub const DEFAULT_TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
/// The subscription used when a topology names none.
pub const DEFAULT_SUBSCRIPTION: &str = "00000000-0000-4000-8000-000000000001";
/// The resource group used when a topology names none.
pub const DEFAULT_RESOURCE_GROUP: &str = "rg";
/// The region used when a topology names none.
pub const DEFAULT_LOCATION: &str = "westeurope";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_string()
}
fn enabled() -> String {
    "Enabled".to_string()
}

impl Subscription {
    /// A subscription in a tenant.
    pub fn new(subscription_id: &str, tenant_id: &str, display_name: &str) -> Self {
        Subscription {
            id: format!("/subscriptions/{subscription_id}"),
            subscription_id: subscription_id.to_string(),
            tenant_id: tenant_id.to_string(),
            display_name: display_name.to_string(),
            state: enabled(),
        }
    }
}

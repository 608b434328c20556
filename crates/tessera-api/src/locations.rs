//! What a subscription's regions offer, as clients list them before creating subnets:
//! `…/providers/Microsoft.Network/locations/{location}/virtualNetworkAvailableEndpointServices`,
//! `…/availableDelegations` and `…/usages` (the subscription's network resources in the region
//! against its limits).

use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use tessera_model::ArmError;

use crate::http::{App, Req, page};
use crate::identity::method_not_allowed;

/// Service endpoints a subnet may enable.
const ENDPOINT_SERVICES: &[&str] = &[
    "Microsoft.Storage",
    "Microsoft.Sql",
    "Microsoft.AzureCosmosDB",
    "Microsoft.KeyVault",
    "Microsoft.ServiceBus",
    "Microsoft.EventHub",
    "Microsoft.AzureActiveDirectory",
    "Microsoft.Web",
    "Microsoft.ContainerRegistry",
    "Microsoft.CognitiveServices",
];

/// Services a subnet may be delegated to.
const DELEGATIONS: &[&str] = &[
    "Microsoft.Web/serverFarms",
    "Microsoft.ContainerInstance/containerGroups",
    "Microsoft.Sql/managedInstances",
    "Microsoft.DBforPostgreSQL/flexibleServers",
    "Microsoft.DBforMySQL/flexibleServers",
    "Microsoft.Netapp/volumes",
    "Microsoft.App/environments",
];

pub(crate) async fn handle(app: &App, req: &Req, sub: &str, location: &str, what: &str) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let kind = what.to_ascii_lowercase();
    let action = match kind.as_str() {
        "virtualnetworkavailableendpointservices" => "virtualNetworkAvailableEndpointServices",
        "availabledelegations" => "availableDelegations",
        "usages" => "usages",
        _ => {
            return Err(ArmError::with_status(
                404,
                "NotFound",
                format!("No route matches the location list '{what}'."),
            ));
        }
    };
    req.authorize(&format!("Microsoft.Network/locations/{action}/read"), &format!("/subscriptions/{sub}"))?;
    let region = tessera_model::location::require(location, &format!("/subscriptions/{sub}/locations/{location}"))?;
    let core = app.core.read().await;
    core.check_scope(sub, None)?;
    let st = core.engine.state();
    let base = format!("/subscriptions/{sub}/providers/Microsoft.Network");
    let items: Vec<serde_json::Value> = match action {
        "virtualNetworkAvailableEndpointServices" => ENDPOINT_SERVICES
            .iter()
            .map(|s| {
                json!({"name": s, "id": format!("{base}/virtualNetworkEndpointServices/{s}"),
                       "type": "Microsoft.Network/virtualNetworkEndpointServices"})
            })
            .collect(),
        "availableDelegations" => DELEGATIONS
            .iter()
            .map(|s| {
                let name = s.replace('/', ".");
                json!({"name": name, "id": format!("{base}/availableDelegations/{name}"),
                       "type": "Microsoft.Network/availableDelegations", "serviceName": s,
                       "actions": ["Microsoft.Network/virtualNetworks/subnets/action"]})
            })
            .collect(),
        _ => {
            let here = |loc: &str, id: &tessera_model::ResourceId| {
                loc.eq_ignore_ascii_case(region.name) && id.subscription().eq_ignore_ascii_case(sub)
            };
            let limits = core.engine.limits();
            let counts = [
                (
                    "VirtualNetworks",
                    "Virtual Networks",
                    st.vnets.values().filter(|v| here(&v.location, &v.id)).count(),
                    limits.vnets_per_subscription,
                ),
                (
                    "NetworkSecurityGroups",
                    "Network Security Groups",
                    st.nsgs.values().filter(|v| here(&v.location, &v.id)).count(),
                    limits.nsgs_per_subscription,
                ),
                (
                    "RouteTables",
                    "Route Tables",
                    st.route_tables.values().filter(|v| here(&v.location, &v.id)).count(),
                    limits.route_tables_per_subscription,
                ),
                (
                    "NetworkInterfaces",
                    "Network Interfaces",
                    st.nics.values().filter(|v| here(&v.location, &v.id)).count(),
                    65_536,
                ),
                (
                    "PublicIPAddresses",
                    "Public IP Addresses",
                    st.public_ips.values().filter(|v| here(&v.resource.location, &v.resource.id)).count(),
                    1_000,
                ),
                (
                    "ApplicationSecurityGroups",
                    "Application Security Groups",
                    st.asgs.values().filter(|v| here(&v.location, &v.id)).count(),
                    3_000,
                ),
            ];
            counts
                .into_iter()
                .map(|(name, display, current, limit)| {
                    json!({"id": format!("{base}/locations/{}/usages/{name}", region.name), "currentValue": current,
                           "limit": limit, "name": {"value": name, "localizedValue": display}, "unit": "Count"})
                })
                .collect()
        }
    };
    drop(core);
    let items: Vec<Bytes> = items.into_iter().map(|v| Bytes::from(v.to_string())).collect();
    page(app, req, &items)
}

//! ARM request paths, matched case-insensitively into what they address.

use tessera_model::{ArmError, ResourceId};

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /metadata/endpoints`: the cloud's endpoints (for `az cloud register`).
    Metadata,
    /// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and the v1 form).
    OpenIdConfiguration { tenant: String },
    /// `POST /{tenant}/oauth2/v2.0/token` (and `/oauth2/token`).
    Token { tenant: String },
    /// `GET /tenants`.
    Tenants,
    /// `GET /subscriptions`.
    Subscriptions,
    /// `GET /subscriptions/{sub}`.
    Subscription { sub: String },
    /// `GET /subscriptions/{sub}/resourcegroups`.
    ResourceGroups { sub: String },
    /// `GET /subscriptions/{sub}/locations`.
    Locations { sub: String },
    /// `GET /subscriptions/{sub}/providers/Microsoft.Network/locations/{location}/{what}`: what a
    /// region offers (endpoint services, delegations) and the subscription's usages there.
    LocationList { sub: String, location: String, what: String },
    /// `GET /subscriptions/{sub}[/resourcegroups/{rg}]/resources`: every resource of a scope.
    Resources { sub: String, rg: Option<String> },
    /// `/subscriptions/{sub}/resourcegroups/{rg}`.
    ResourceGroup { sub: String, rg: String },
    /// `GET /subscriptions/{sub}/providers/{ns}/locations/{loc}/operations|operationResults/{id}`.
    Operation { sub: String, id: String, result: bool },
    /// `GET /subscriptions/{sub}/providers/{ns}/{type}`: every resource of a type in a subscription.
    ListInSubscription { sub: String, arm_type: String },
    /// `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}`.
    ListInGroup { sub: String, rg: String, arm_type: String },
    /// A resource or child resource.
    Resource(ResourceId),
    /// `GET {parent}/{childType}`: a child collection.
    Children { parent: ResourceId, segment: String },
    /// `POST {resource}/{action}` (and the few GET actions).
    Action { target: ResourceId, action: String },
    /// `GET /tessera/feed/{host}`: the watch feed for host agents.
    Feed { host: String },
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`.
    RoleAssignment { scope: String, name: Option<String> },
    /// `{scope}/providers/Microsoft.Authorization/roleDefinitions[/{name}]`.
    RoleDefinition { scope: String, name: Option<String> },
    /// `/tessera/principals/{clientId}`: Tessera's directory of service principals.
    Principal { client_id: String },
    /// `PUT /tessera/hosts/{host}`: a host agent's underlay address; `POST`: a gateway report.
    Host { name: String },
    /// `POST /tessera/hosts/{host}/usage`: a host agent's peering usage report.
    HostUsage { name: String },
    /// `GET /tessera/hosts/{host}/probes`: live probes to send; `POST`: what they found.
    HostProbes { name: String },
    /// `GET /tessera/cluster`: this server, who leads the servers of its store, and the
    /// leader's work.
    Cluster,
    /// `GET /subscriptions/{sub}/providers/Microsoft.Consumption/usageDetails`.
    UsageDetails { sub: String },
    /// `GET {resource}/providers/Microsoft.Insights/metrics` (`definitions`: `…/metricDefinitions`).
    Metrics { target: ResourceId, definitions: bool },
    /// `GET {scope}/providers/Microsoft.Authorization/permissions`: what the caller may do there.
    Permissions { scope: String },
    /// `GET /console[/{file}]`: the web console's page and bundle (public: they hold no data).
    Console { file: String },
    /// `GET /tessera/changes`: waits for a change the caller may read (the console's updates).
    Changes,
    /// `GET /tessera/reachability`: which VMs the caller may read reach which others.
    Reachability,
}

/// A `{scope}/providers/Microsoft.Authorization/{roleAssignments|roleDefinitions}[/{name}]` path.
fn authorization(seg: &[&str]) -> Option<Route> {
    if let [scope @ .., p, ns, perms] = seg
        && eq(p, "providers")
        && eq(ns, "Microsoft.Authorization")
        && eq(perms, "permissions")
    {
        return Some(Route::Permissions { scope: format!("/{}", scope.join("/")) });
    }
    let at = seg.windows(3).position(|w| {
        eq(w[0], "providers")
            && eq(w[1], "Microsoft.Authorization")
            && (eq(w[2], "roleAssignments") || eq(w[2], "roleDefinitions"))
    })?;
    let rest = &seg[at + 3..];
    if rest.len() > 1 {
        return None;
    }
    let scope = format!("/{}", seg[..at].join("/"));
    let name = rest.first().map(|n| (*n).to_string());
    Some(if eq(seg[at + 2], "roleAssignments") {
        Route::RoleAssignment { scope, name }
    } else {
        Route::RoleDefinition { scope, name }
    })
}

/// Every family of operations the API serves (a method and the kind of path), for the
/// authorization matrix and its coverage test.
pub const OPERATION_FAMILIES: &[&str] = &[
    "GET metadata",
    "GET openid-configuration",
    "POST token",
    "GET tenants",
    "GET subscriptions",
    "GET subscription",
    "PUT subscription",
    "GET resource groups",
    "GET locations",
    "GET location list",
    "GET resources in subscription",
    "GET resources in resource group",
    "GET resource group",
    "HEAD resource group",
    "PUT resource group",
    "PATCH resource group",
    "DELETE resource group",
    "GET operation",
    "GET list in subscription",
    "GET list in resource group",
    "GET resource",
    "HEAD resource",
    "PUT resource",
    "PATCH resource",
    "DELETE resource",
    "GET child resource",
    "PUT child resource",
    "DELETE child resource",
    "GET child collection",
    "POST action",
    "GET action",
    "GET feed",
    "GET role assignment",
    "PUT role assignment",
    "DELETE role assignment",
    "GET role assignments",
    "GET role definition",
    "PUT role definition",
    "DELETE role definition",
    "GET role definitions",
    "GET principal",
    "PUT principal",
    "PUT host",
    "POST host",
    "POST host usage",
    "GET host probes",
    "POST host probes",
    "GET usage details",
    "GET metrics",
    "GET cluster",
    "GET metric definitions",
    "GET permissions",
    "GET console",
    "GET changes",
    "GET reachability",
];

impl Route {
    /// The family of an operation on this route (see [`OPERATION_FAMILIES`]).
    pub(crate) fn family(&self, method: &str) -> String {
        let kind = match self {
            Route::Metadata => "metadata",
            Route::OpenIdConfiguration { .. } => "openid-configuration",
            Route::Token { .. } => "token",
            Route::Tenants => "tenants",
            Route::Subscriptions => "subscriptions",
            Route::Subscription { .. } => "subscription",
            Route::ResourceGroups { .. } => "resource groups",
            Route::Locations { .. } => "locations",
            Route::LocationList { .. } => "location list",
            Route::Resources { rg: None, .. } => "resources in subscription",
            Route::Resources { rg: Some(_), .. } => "resources in resource group",
            Route::ResourceGroup { .. } => "resource group",
            Route::Operation { .. } => "operation",
            Route::ListInSubscription { .. } => "list in subscription",
            Route::ListInGroup { .. } => "list in resource group",
            Route::Resource(id) if id.parent().is_some() => "child resource",
            Route::Resource(_) => "resource",
            Route::Children { .. } => "child collection",
            Route::Action { .. } => "action",
            Route::Feed { .. } => "feed",
            Route::RoleAssignment { name: Some(_), .. } => "role assignment",
            Route::RoleAssignment { name: None, .. } => "role assignments",
            Route::RoleDefinition { name: Some(_), .. } => "role definition",
            Route::RoleDefinition { name: None, .. } => "role definitions",
            Route::Principal { .. } => "principal",
            Route::Host { .. } => "host",
            Route::HostUsage { .. } => "host usage",
            Route::HostProbes { .. } => "host probes",
            Route::Cluster => "cluster",
            Route::UsageDetails { .. } => "usage details",
            Route::Metrics { definitions: false, .. } => "metrics",
            Route::Metrics { definitions: true, .. } => "metric definitions",
            Route::Permissions { .. } => "permissions",
            Route::Console { .. } => "console",
            Route::Changes => "changes",
            Route::Reachability => "reachability",
        };
        format!("{} {kind}", method.to_ascii_uppercase())
    }
}

/// The family of a request (`None` when no route matches), for the authorization matrix.
pub fn operation_family(method: &str, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    parse(path, method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD"))
        .ok()
        .map(|r| r.family(method))
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Child collections read with GET whose name is an action rather than a child type.
const GET_ACTIONS: &[&str] = &["checkIPAddressAvailability", "usages"];

fn not_found(path: &str) -> ArmError {
    ArmError::with_status(404, "NotFound", format!("No route matches the path '{path}'."))
}

/// Parses a request path. `get` says whether the method is GET (a trailing odd segment is then
/// a child collection, otherwise an action).
pub(crate) fn parse(path: &str, get: bool) -> Result<Route, ArmError> {
    // Clients join a base URL ending in `/` with a path starting with one (`az cloud register`
    // asks for `//metadata/endpoints`); ARM accepts the doubled leading slash, so do we.
    let path = &path[path.len() - path.trim_start_matches('/').len() - usize::from(path.starts_with('/'))..];
    let trimmed = path.trim_end_matches('/');
    let seg: Vec<&str> = trimmed.split('/').skip(1).collect();
    if seg.iter().any(|s| s.is_empty()) {
        return Err(not_found(path));
    }
    if let Some(r) = authorization(&seg) {
        return Ok(r);
    }
    match seg.as_slice() {
        [m, e] if eq(m, "metadata") && eq(e, "endpoints") => Ok(Route::Metadata),
        [t, p, id] if eq(t, "tessera") && eq(p, "principals") => Ok(Route::Principal { client_id: (*id).to_string() }),
        [t, h, name] if eq(t, "tessera") && eq(h, "hosts") => Ok(Route::Host { name: (*name).to_string() }),
        [t, h, name, u] if eq(t, "tessera") && eq(h, "hosts") && eq(u, "usage") => {
            Ok(Route::HostUsage { name: (*name).to_string() })
        }
        [t, h, name, p] if eq(t, "tessera") && eq(h, "hosts") && eq(p, "probes") => {
            Ok(Route::HostProbes { name: (*name).to_string() })
        }
        [s, sub, p, ns, ty]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Consumption")
                && eq(ty, "usageDetails") =>
        {
            Ok(Route::UsageDetails { sub: (*sub).to_string() })
        }
        [t, v, w, o] if eq(v, "v2.0") && eq(w, ".well-known") && eq(o, "openid-configuration") => {
            Ok(Route::OpenIdConfiguration { tenant: (*t).to_string() })
        }
        [t, w, o] if eq(w, ".well-known") && eq(o, "openid-configuration") => {
            Ok(Route::OpenIdConfiguration { tenant: (*t).to_string() })
        }
        [t, o, v, tok] if eq(o, "oauth2") && eq(v, "v2.0") && eq(tok, "token") => {
            Ok(Route::Token { tenant: (*t).to_string() })
        }
        [t, o, tok] if eq(o, "oauth2") && eq(tok, "token") => Ok(Route::Token { tenant: (*t).to_string() }),
        [t] if eq(t, "tenants") => Ok(Route::Tenants),
        [s] if eq(s, "subscriptions") => Ok(Route::Subscriptions),
        [t, f, h] if eq(t, "tessera") && eq(f, "feed") => Ok(Route::Feed { host: (*h).to_string() }),
        [t, c] if eq(t, "tessera") && eq(c, "cluster") => Ok(Route::Cluster),
        [t, c] if eq(t, "tessera") && eq(c, "changes") => Ok(Route::Changes),
        [t, r] if eq(t, "tessera") && eq(r, "reachability") => Ok(Route::Reachability),
        [c] if eq(c, "console") => Ok(Route::Console { file: String::new() }),
        [c, file] if eq(c, "console") => Ok(Route::Console { file: (*file).to_string() }),
        [s, sub] if eq(s, "subscriptions") => Ok(Route::Subscription { sub: (*sub).to_string() }),
        [s, sub, g] if eq(s, "subscriptions") && eq(g, "resourcegroups") => {
            Ok(Route::ResourceGroups { sub: (*sub).to_string() })
        }
        [s, sub, l] if eq(s, "subscriptions") && eq(l, "locations") => Ok(Route::Locations { sub: (*sub).to_string() }),
        [s, sub, r] if eq(s, "subscriptions") && eq(r, "resources") => {
            Ok(Route::Resources { sub: (*sub).to_string(), rg: None })
        }
        [s, sub, g, rg, r] if eq(s, "subscriptions") && eq(g, "resourcegroups") && eq(r, "resources") => {
            Ok(Route::Resources { sub: (*sub).to_string(), rg: Some((*rg).to_string()) })
        }
        [s, sub, g, rg] if eq(s, "subscriptions") && eq(g, "resourcegroups") => {
            Ok(Route::ResourceGroup { sub: (*sub).to_string(), rg: (*rg).to_string() })
        }
        [s, sub, p, _ns, l, _loc, o, id]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(l, "locations")
                && (eq(o, "operations") || eq(o, "operationResults")) =>
        {
            Ok(Route::Operation { sub: (*sub).to_string(), id: (*id).to_string(), result: eq(o, "operationResults") })
        }
        [s, sub, p, ns, l, location, what]
            if eq(s, "subscriptions") && eq(p, "providers") && eq(ns, "Microsoft.Network") && eq(l, "locations") =>
        {
            Ok(Route::LocationList {
                sub: (*sub).to_string(),
                location: (*location).to_string(),
                what: (*what).to_string(),
            })
        }
        [s, sub, p, ns, ty] if eq(s, "subscriptions") && eq(p, "providers") => {
            Ok(Route::ListInSubscription { sub: (*sub).to_string(), arm_type: format!("{ns}/{ty}") })
        }
        [s, sub, g, rg, p, ns, ty] if eq(s, "subscriptions") && eq(g, "resourcegroups") && eq(p, "providers") => {
            Ok(Route::ListInGroup { sub: (*sub).to_string(), rg: (*rg).to_string(), arm_type: format!("{ns}/{ty}") })
        }
        // A connection's pre-shared key: `GetSharedKey` and `SetSharedKey`.
        [s, _, g, _, p, ns, ty, _, key]
            if eq(s, "subscriptions")
                && eq(g, "resourcegroups")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Network")
                && eq(ty, "connections")
                && eq(key, "sharedkey") =>
        {
            let cut = trimmed.rfind('/').unwrap_or(trimmed.len());
            let target = ResourceId::parse(&trimmed[..cut])
                .map_err(|e| ArmError::bad_request("InvalidResourceId", e.to_string()))?;
            Ok(Route::Action { target, action: "sharedkey".into() })
        }
        // Azure Monitor on a resource: its metrics and their definitions.
        [s, .., p, ns, m]
            if eq(s, "subscriptions")
                && eq(p, "providers")
                && eq(ns, "Microsoft.Insights")
                && (eq(m, "metrics") || eq(m, "metricDefinitions")) =>
        {
            let cut = trimmed.len() - "/providers/Microsoft.Insights/".len() - m.len();
            let target = ResourceId::parse(&trimmed[..cut])
                .map_err(|e| ArmError::bad_request("InvalidResourceId", e.to_string()))?;
            Ok(Route::Metrics { target, definitions: eq(m, "metricDefinitions") })
        }
        [s, _, g, _, p, _, rest @ ..]
            if eq(s, "subscriptions") && eq(g, "resourcegroups") && eq(p, "providers") && rest.len() >= 2 =>
        {
            let bad_id = |e: tessera_model::id::IdError| ArmError::bad_request("InvalidResourceId", e.to_string());
            if rest.len().is_multiple_of(2) {
                return Ok(Route::Resource(ResourceId::parse(trimmed).map_err(bad_id)?));
            }
            let cut = trimmed.rfind('/').unwrap_or(trimmed.len());
            let last = seg.last().copied().unwrap_or_default();
            let target = ResourceId::parse(&trimmed[..cut]).map_err(bad_id)?;
            if get && !GET_ACTIONS.iter().any(|a| eq(a, last)) {
                Ok(Route::Children { parent: target, segment: last.to_string() })
            } else {
                Ok(Route::Action { target, action: last.to_string() })
            }
        }
        _ => Err(not_found(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route's family is listed, so the matrix's coverage test knows of it.
    #[test]
    fn every_family_is_listed() {
        let vnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v";
        let paths = [
            "/metadata/endpoints".to_string(),
            "/t/v2.0/.well-known/openid-configuration".into(),
            "/t/oauth2/v2.0/token".into(),
            "/tenants".into(),
            "/subscriptions".into(),
            "/subscriptions/s".into(),
            "/subscriptions/s/resourcegroups".into(),
            "/subscriptions/s/resourcegroups/rg".into(),
            "/subscriptions/s/locations".into(),
            "/subscriptions/s/providers/Microsoft.Network/locations/westeurope/usages".into(),
            "/subscriptions/s/resources".into(),
            "/subscriptions/s/resourcegroups/rg/resources".into(),
            "/subscriptions/s/providers/Microsoft.Network/locations/l/operations/x".into(),
            "/subscriptions/s/providers/Microsoft.Network/virtualNetworks".into(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks".into(),
            vnet.to_string(),
            format!("{vnet}/subnets/a"),
            format!("{vnet}/subnets"),
            "/tessera/feed/h".into(),
            "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a".into(),
            "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments".into(),
            "/providers/Microsoft.Authorization/roleDefinitions/d".into(),
            "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions".into(),
            "/tessera/principals/p".into(),
            "/tessera/hosts/h".into(),
            "/tessera/hosts/h/usage".into(),
            "/tessera/hosts/h/probes".into(),
            "/tessera/cluster".into(),
            "/subscriptions/s/providers/Microsoft.Consumption/usageDetails".into(),
            format!("{vnet}/providers/Microsoft.Insights/metrics"),
            format!("{vnet}/providers/microsoft.insights/metricDefinitions"),
        ];
        for path in paths {
            for method in ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"] {
                let family = operation_family(method, &path).unwrap_or_else(|| panic!("{path} has no route"));
                let served = OPERATION_FAMILIES.contains(&family.as_str());
                // Only combinations the server answers need a row; the rest are 405s.
                let listed_kind = OPERATION_FAMILIES
                    .iter()
                    .any(|f| f.split_once(' ').map(|x| x.1) == family.split_once(' ').map(|x| x.1));
                assert!(served || listed_kind, "{family} ({path}) is in no family");
            }
        }
        assert!(operation_family("POST", &format!("{vnet}/effectiveRouteTable")).is_some_and(|f| f == "POST action"));
        assert_eq!(
            parse(&format!("{vnet}/providers/Microsoft.Insights/metrics"), true).ok(),
            Some(Route::Metrics { target: ResourceId::parse(vnet).expect("id"), definitions: false })
        );
    }

    #[test]
    fn paths_match_case_insensitively() {
        let vnet = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/v";
        assert!(matches!(parse(vnet, true), Ok(Route::Resource(id)) if id.name() == "v"));
        let upper = "/SUBSCRIPTIONS/s/RESOURCEGROUPS/rg/PROVIDERS/microsoft.network/VIRTUALNETWORKS/v/";
        assert!(
            matches!(parse(upper, true), Ok(Route::Resource(id)) if id.kind() == tessera_model::Kind::VirtualNetwork)
        );
        assert!(
            matches!(parse(&format!("{vnet}/subnets"), true), Ok(Route::Children { segment, .. }) if segment == "subnets")
        );
        assert!(matches!(
            parse(&format!("{vnet}/subnets/a/PrepareNetworkPolicies"), false),
            Ok(Route::Action { action, .. }) if action == "PrepareNetworkPolicies"
        ));
        assert!(matches!(parse(&format!("{vnet}/CheckIPAddressAvailability"), true), Ok(Route::Action { .. })));
        let conn = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/connections/c";
        assert!(matches!(
            parse(&format!("{conn}/sharedkey"), true),
            Ok(Route::Action { target, action }) if action == "sharedkey" && target.kind() == tessera_model::Kind::Connection
        ));
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks", true),
            Ok(Route::ListInGroup {
                sub: "s".into(),
                rg: "rg".into(),
                arm_type: "Microsoft.Network/virtualNetworks".into()
            })
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.Network/locations/westus/operationResults/x", true),
            Ok(Route::Operation { sub: "s".into(), id: "x".into(), result: true })
        );
        assert_eq!(
            parse("/t/v2.0/.well-known/openid-configuration", true),
            Ok(Route::OpenIdConfiguration { tenant: "t".into() })
        );
        assert!(parse("/subscriptions//resourceGroups/x", true).is_err());
        assert_eq!(parse("//metadata/endpoints", true), Ok(Route::Metadata));
        assert!(parse("/nothing/here/at/all/really", true).is_err());
    }
}

//! Role-based access (spec §2.4): role definitions (the built-in Owner, Contributor, Reader and
//! Network Contributor, and custom roles) with actions and notActions, role assignments at a
//! scope (everything under the scope inherits them), and the decision: may this principal
//! perform this action on this scope. Pure data and logic; the API keeps a snapshot per request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The role definitions' provider path.
pub const DEFINITIONS: &str = "providers/Microsoft.Authorization/roleDefinitions";
/// The role assignments' provider path.
pub const ASSIGNMENTS: &str = "providers/Microsoft.Authorization/roleAssignments";

/// Owner: everything, including access management.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Contributor: everything but access management.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Reader: every read.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Network Contributor: all of Microsoft.Network (A1).
pub const NETWORK_CONTRIBUTOR: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";

/// What a role permits: actions, minus notActions (wildcards `*` allowed, case-insensitive).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Allowed actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Actions taken back out.
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Data actions (kept for the wire shape; none are checked here).
    #[serde(default)]
    pub data_actions: Vec<String>,
    /// Data actions taken back out.
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

/// A role definition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// Its GUID.
    pub name: String,
    /// The role's display name.
    pub role_name: String,
    /// `BuiltInRole` or `CustomRole`.
    pub role_type: String,
    /// What it does.
    pub description: String,
    /// Its permissions.
    pub permissions: Vec<Permission>,
    /// Where it may be assigned (`/` for built-ins).
    pub assignable_scopes: Vec<String>,
}

impl RoleDefinition {
    /// Whether the role permits `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.actions.iter().any(|a| matches(a, action)) && !p.not_actions.iter().any(|n| matches(n, action)))
    }
}

/// A role assignment: a principal holds a role at a scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Its GUID.
    pub name: String,
    /// The scope (`/subscriptions/…`, a resource group, a resource, or `/`).
    pub scope: String,
    /// The role definition's GUID.
    pub role: String,
    /// The principal (a service principal's client id).
    pub principal_id: String,
}

/// Role definitions and assignments.
#[derive(Debug, Clone, Default)]
pub struct Rbac {
    /// Definitions by lowercase GUID.
    pub definitions: BTreeMap<String, RoleDefinition>,
    /// Assignments by lowercase GUID (change them with [`Rbac::assign`] and [`Rbac::unassign`]).
    pub assignments: BTreeMap<String, RoleAssignment>,
    /// The assignments of each principal (lowercase client id): a decision reads only these.
    by_principal: std::collections::HashMap<String, Vec<String>>,
}

fn builtin(name: &str, role: &str, description: &str, actions: &[&str], not_actions: &[&str]) -> RoleDefinition {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
    RoleDefinition {
        name: name.to_string(),
        role_name: role.to_string(),
        role_type: "BuiltInRole".to_string(),
        description: description.to_string(),
        permissions: vec![Permission {
            actions: strings(actions),
            not_actions: strings(not_actions),
            ..Permission::default()
        }],
        assignable_scopes: vec!["/".to_string()],
    }
}

impl Rbac {
    /// The built-in roles and no assignments.
    pub fn with_builtins() -> Rbac {
        let mut r = Rbac::default();
        for d in [
            builtin(
                OWNER,
                "Owner",
                "Grants full access to manage all resources, including assigning roles.",
                &["*"],
                &[],
            ),
            builtin(
                CONTRIBUTOR,
                "Contributor",
                "Grants full access to manage all resources, but does not allow you to assign roles.",
                &["*"],
                &[
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/elevateAccess/Action",
                ],
            ),
            builtin(
                READER,
                "Reader",
                "View all resources, but does not allow you to make any changes.",
                &["*/read"],
                &[],
            ),
            builtin(
                NETWORK_CONTRIBUTOR,
                "Network Contributor",
                "Lets you manage networks, but not access to them.",
                &[
                    "Microsoft.Authorization/*/read",
                    "Microsoft.Insights/alertRules/*",
                    "Microsoft.Network/*",
                    "Microsoft.ResourceHealth/availabilityStatuses/read",
                    "Microsoft.Resources/deployments/*",
                    "Microsoft.Resources/subscriptions/resourceGroups/read",
                    "Microsoft.Support/*",
                ],
                &[],
            ),
        ] {
            r.definitions.insert(d.name.clone(), d);
        }
        r
    }

    /// Adds (or replaces) an assignment.
    pub fn assign(&mut self, a: RoleAssignment) {
        let key = a.name.to_ascii_lowercase();
        self.unassign(&key);
        self.by_principal.entry(a.principal_id.to_ascii_lowercase()).or_default().push(key.clone());
        self.assignments.insert(key, a);
    }

    /// Removes an assignment; the removed one.
    pub fn unassign(&mut self, name: &str) -> Option<RoleAssignment> {
        let key = name.to_ascii_lowercase();
        let gone = self.assignments.remove(&key)?;
        if let Some(list) = self.by_principal.get_mut(&gone.principal_id.to_ascii_lowercase()) {
            list.retain(|k| *k != key);
        }
        Some(gone)
    }

    fn of(&self, principal: &str) -> impl Iterator<Item = &RoleAssignment> {
        self.by_principal
            .get(&principal.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|k| self.assignments.get(k))
    }

    /// Whether `principal` may perform `action` on `scope`: some role it holds at the scope or
    /// above permits it.
    pub fn allows(&self, principal: &str, action: &str, scope: &str) -> bool {
        self.of(principal).any(|a| {
            covers(&a.scope, scope)
                && self.definitions.get(&a.role.to_ascii_lowercase()).is_some_and(|d| d.allows(action))
        })
    }

    /// The permissions of every role `principal` holds at `scope` or above, one per assignment
    /// (ARM's `Microsoft.Authorization/permissions`).
    pub fn permissions_at(&self, principal: &str, scope: &str) -> Vec<Permission> {
        self.of(principal)
            .filter(|a| covers(&a.scope, scope))
            .filter_map(|a| self.definitions.get(&a.role.to_ascii_lowercase()))
            .flat_map(|d| d.permissions.iter().cloned())
            .collect()
    }

    /// Whether `principal` holds any role at or under `scope`, or above it (for listing what a
    /// caller can see).
    pub fn sees(&self, principal: &str, scope: &str) -> bool {
        self.of(principal).any(|a| covers(&a.scope, scope) || covers(scope, &a.scope))
    }
}

/// Whether an assignment at `assigned` applies at `scope` (the same scope or one below it).
pub fn covers(assigned: &str, scope: &str) -> bool {
    let a = assigned.trim_end_matches('/');
    if a.is_empty() {
        return true;
    }
    scope.len() >= a.len()
        && scope[..a.len()].eq_ignore_ascii_case(a)
        && (scope.len() == a.len() || scope.as_bytes()[a.len()] == b'/')
}

/// Whether an action pattern (`*` matches any run of characters) matches an action,
/// case-insensitively.
pub fn matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == a;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !a.starts_with(first) || !a[first.len()..].ends_with(last) || a.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &a[first.len()..a.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(r: &mut Rbac, who: &str, role: &str, scope: &str) {
        let name = format!("{who}-{role}-{scope}");
        r.assign(RoleAssignment { name, scope: scope.into(), role: role.into(), principal_id: who.into() });
    }

    #[test]
    fn wildcards_match_like_arm() {
        assert!(matches("*", "Microsoft.Network/virtualNetworks/write"));
        assert!(matches("*/read", "Microsoft.Network/virtualNetworks/read"));
        assert!(!matches("*/read", "Microsoft.Network/virtualNetworks/write"));
        assert!(matches("Microsoft.Network/*", "microsoft.network/virtualNetworks/peer/action"));
        assert!(matches("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
        assert!(!matches("Microsoft.Network/*", "Microsoft.Compute/virtualMachines/read"));
        assert!(matches("a*b*c", "a-x-b-y-c") && !matches("a*b*c", "a-x-c-y-b"));
    }

    #[test]
    fn scopes_inherit_downwards_only() {
        assert!(covers("/", "/subscriptions/s"));
        assert!(covers("/subscriptions/S", "/subscriptions/s/resourceGroups/rg"));
        assert!(!covers("/subscriptions/s/resourceGroups/rg", "/subscriptions/s"));
        assert!(!covers("/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2"));
    }

    #[test]
    fn built_in_roles_decide_as_documented() {
        let mut r = Rbac::with_builtins();
        let rg = "/subscriptions/s/resourceGroups/net";
        let vnet = format!("{rg}/providers/Microsoft.Network/virtualNetworks/v");
        assign(&mut r, "owner", OWNER, "/subscriptions/s");
        assign(&mut r, "contributor", CONTRIBUTOR, "/subscriptions/s");
        assign(&mut r, "reader", READER, "/subscriptions/s");
        assign(&mut r, "netc", NETWORK_CONTRIBUTOR, rg);
        let write = "Microsoft.Network/virtualNetworks/write";
        let grant = "Microsoft.Authorization/roleAssignments/write";
        assert!(r.allows("owner", write, &vnet) && r.allows("owner", grant, &vnet));
        assert!(r.allows("contributor", write, &vnet) && !r.allows("contributor", grant, &vnet));
        assert!(
            r.allows("reader", "Microsoft.Network/virtualNetworks/read", &vnet) && !r.allows("reader", write, &vnet)
        );
        assert!(r.allows("netc", "Microsoft.Network/virtualNetworks/peer/action", &vnet), "A1");
        assert!(!r.allows(
            "netc",
            write,
            "/subscriptions/s/resourceGroups/other/providers/Microsoft.Network/virtualNetworks/w"
        ));
        assert!(!r.allows("nobody", "Microsoft.Network/virtualNetworks/read", &vnet));
    }
}

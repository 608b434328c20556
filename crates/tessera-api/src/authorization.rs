//! Microsoft.Authorization: role assignments and role definitions at any scope (subscription,
//! resource group, resource, or `/`), in ARM's shapes; and Tessera's directory extension
//! `/tessera/principals/{clientId}` (service principals, their home tenant and the tenants they
//! are guests in), which Azure keeps in Entra ID.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_model::ArmError;

use crate::auth::{ServicePrincipal, sha256_hex, subscription_of};
use crate::http::{App, Req, json_value};
use crate::identity::method_not_allowed;
use crate::rbac::{ASSIGNMENTS, DEFINITIONS, Permission, RoleAssignment, RoleDefinition, covers};
use crate::route::Route;

/// `GET {scope}/providers/Microsoft.Authorization/permissions`: what the caller's roles at the
/// scope (or above) permit — how a client such as the console knows which controls to show.
/// Any principal of the scope's tenant may ask about itself; one of another tenant is refused.
pub(crate) async fn permissions(app: &App, req: &Req, scope: &str) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let caller = req.principal()?;
    req.access.check_tenant(caller, scope)?;
    // The scope must exist: a subscription and resource group (and `/` for the whole server).
    if scope != "/" {
        let Some(sub) = subscription_of(scope) else {
            return Err(ArmError::bad_request("InvalidScope", format!("'{scope}' is not a scope of this server.")));
        };
        let rg = scope
            .split('/')
            .nth(4)
            .filter(|_| scope.split('/').nth(3).is_some_and(|s| s.eq_ignore_ascii_case("resourceGroups")));
        app.core.read().await.check_scope(sub, rg)?;
    }
    let value: Vec<Value> = req
        .access
        .rbac
        .permissions_at(&caller.client_id, scope)
        .into_iter()
        .map(|p| {
            json!({"actions": p.actions, "notActions": p.not_actions,
                   "dataActions": p.data_actions, "notDataActions": p.not_data_actions})
        })
        .collect();
    Ok(json_value(StatusCode::OK, &json!({ "value": value })))
}

pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    match &req.route {
        Route::RoleAssignment { scope, name: Some(name) } => match req.method {
            Method::PUT => put_assignment(app, req, scope, name).await,
            Method::GET => {
                req.authorize("Microsoft.Authorization/roleAssignments/read", scope)?;
                let core = app.core.read().await;
                let a = core
                    .rbac
                    .assignments
                    .get(&name.to_ascii_lowercase())
                    .filter(|a| a.scope.eq_ignore_ascii_case(scope))
                    .ok_or_else(|| assignment_not_found(name))?;
                Ok(json_value(StatusCode::OK, &assignment_body(a)))
            }
            Method::DELETE => {
                req.authorize("Microsoft.Authorization/roleAssignments/delete", scope)?;
                let gone = app
                    .write(|core| {
                        let here = core
                            .rbac
                            .assignments
                            .get(&name.to_ascii_lowercase())
                            .is_some_and(|a| a.scope.eq_ignore_ascii_case(scope));
                        Ok(if here { core.delete_assignment(name) } else { None })
                    })
                    .await?;
                Ok(match gone {
                    Some(a) => json_value(StatusCode::OK, &assignment_body(&a)),
                    None => StatusCode::NO_CONTENT.into_response(),
                })
            }
            _ => Err(method_not_allowed(req)),
        },
        Route::RoleAssignment { scope, name: None } if req.method == Method::GET => {
            req.authorize("Microsoft.Authorization/roleAssignments/read", scope)?;
            let filter = req.query("$filter").unwrap_or_default().to_string();
            let at_scope = filter.to_ascii_lowercase().contains("atscope()");
            let principal = quoted_after(&filter, "principalid eq").or_else(|| quoted_after(&filter, "assignedto("));
            let core = app.core.read().await;
            let value: Vec<Value> = core
                .rbac
                .assignments
                .values()
                .filter(|a| covers(&a.scope, scope) || (!at_scope && covers(scope, &a.scope)))
                .filter(|a| principal.as_ref().is_none_or(|p| a.principal_id.eq_ignore_ascii_case(p)))
                .map(assignment_body)
                .collect();
            Ok(json_value(StatusCode::OK, &json!({ "value": value })))
        }
        Route::RoleDefinition { scope, name: Some(name) } => match req.method {
            Method::PUT => put_definition(app, req, scope, name).await,
            Method::GET => {
                req.authorize("Microsoft.Authorization/roleDefinitions/read", scope)?;
                let core = app.core.read().await;
                let d = core
                    .rbac
                    .definitions
                    .get(&name.to_ascii_lowercase())
                    .filter(|d| visible_at(d, scope))
                    .ok_or_else(|| definition_not_found(name))?;
                Ok(json_value(StatusCode::OK, &definition_body(d, scope)))
            }
            Method::DELETE => {
                req.authorize("Microsoft.Authorization/roleDefinitions/delete", scope)?;
                let gone = app
                    .write(|core| {
                        let key = name.to_ascii_lowercase();
                        match core.rbac.definitions.get(&key).filter(|d| visible_at(d, scope)) {
                            None => Ok(None),
                            Some(d) if d.role_type == "BuiltInRole" => Err(ArmError::bad_request(
                                "RoleDefinitionCannotBeDeleted",
                                format!("The built-in role '{}' cannot be deleted.", d.role_name),
                            )),
                            Some(_) if core.rbac.assignments.values().any(|a| a.role.eq_ignore_ascii_case(&key)) => {
                                Err(ArmError::bad_request(
                                    "RoleDefinitionHasAssignments",
                                    "There are role assignments that use this role definition; delete them first.",
                                ))
                            }
                            Some(d) => {
                                // The right must hold wherever the role can be assigned.
                                req.authorize_all(
                                    "Microsoft.Authorization/roleDefinitions/delete",
                                    &d.assignable_scopes,
                                )?;
                                Ok(core.delete_definition(&key))
                            }
                        }
                    })
                    .await?;
                Ok(match gone {
                    Some(d) => json_value(StatusCode::OK, &definition_body(&d, scope)),
                    None => StatusCode::NO_CONTENT.into_response(),
                })
            }
            _ => Err(method_not_allowed(req)),
        },
        Route::RoleDefinition { scope, name: None } if req.method == Method::GET => {
            req.authorize("Microsoft.Authorization/roleDefinitions/read", scope)?;
            let filter = req.query("$filter").unwrap_or_default().to_string();
            let role_name = quoted_after(&filter, "rolename eq");
            let core = app.core.read().await;
            let value: Vec<Value> = core
                .rbac
                .definitions
                .values()
                .filter(|d| visible_at(d, scope))
                .filter(|d| role_name.as_ref().is_none_or(|n| d.role_name.eq_ignore_ascii_case(n)))
                .map(|d| definition_body(d, scope))
                .collect();
            Ok(json_value(StatusCode::OK, &json!({ "value": value })))
        }
        Route::Principal { client_id } => principal(app, req, client_id).await,
        _ => Err(method_not_allowed(req)),
    }
}

/// The value in quotes after `key` in an OData filter (case-insensitive key).
fn quoted_after(filter: &str, key: &str) -> Option<String> {
    let at = filter.to_ascii_lowercase().find(key)? + key.len();
    let rest = &filter[at..];
    let open = rest.find('\'')? + 1;
    let close = rest[open..].find('\'')? + open;
    Some(rest[open..close].to_string())
}

fn guid(text: &str, code: &str, what: &str) -> Result<(), ArmError> {
    uuid::Uuid::parse_str(text)
        .map(|_| ())
        .map_err(|_| ArmError::bad_request(code, format!("The {what} '{text}' is not valid. It must be a GUID.")))
}

/// Whether a role definition shows at `scope`: a built-in role everywhere, a custom role where
/// one of its assignable scopes contains the scope or lies under it.
fn visible_at(d: &RoleDefinition, scope: &str) -> bool {
    d.role_type == "BuiltInRole" || d.assignable_scopes.iter().any(|s| covers(s, scope) || covers(scope, s))
}

/// Whether a role may be assigned at `scope`: one of its assignable scopes contains it.
fn assignable_at(d: &RoleDefinition, scope: &str) -> bool {
    d.assignable_scopes.iter().any(|s| covers(s, scope))
}

fn definition_id(scope: &str, guid: &str) -> String {
    match subscription_of(scope) {
        Some(sub) => format!("/subscriptions/{sub}/{DEFINITIONS}/{guid}"),
        None => format!("/{DEFINITIONS}/{guid}"),
    }
}

fn scope_prefix(scope: &str) -> &str {
    scope.trim_end_matches('/')
}

fn assignment_body(a: &RoleAssignment) -> Value {
    json!({
        "id": format!("{}/{ASSIGNMENTS}/{}", scope_prefix(&a.scope), a.name),
        "type": "Microsoft.Authorization/roleAssignments",
        "name": a.name,
        "properties": {
            "roleDefinitionId": definition_id(&a.scope, &a.role),
            "principalId": a.principal_id,
            "principalType": "ServicePrincipal",
            "scope": a.scope,
            "condition": null,
            "conditionVersion": null,
            "delegatedManagedIdentityResourceId": null,
            "description": null,
        }
    })
}

fn definition_body(d: &RoleDefinition, scope: &str) -> Value {
    json!({
        "id": definition_id(scope, &d.name),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": d.name,
        "properties": {
            "roleName": d.role_name,
            "type": d.role_type,
            "description": d.description,
            "assignableScopes": d.assignable_scopes,
            "permissions": d.permissions,
        }
    })
}

fn assignment_not_found(name: &str) -> ArmError {
    ArmError::with_status(404, "RoleAssignmentNotFound", format!("The role assignment '{name}' is not found."))
}

fn definition_not_found(name: &str) -> ArmError {
    ArmError::with_status(
        404,
        "RoleDefinitionDoesNotExist",
        format!("The specified role definition with ID '{name}' does not exist."),
    )
}

fn properties(req: &Req) -> Result<serde_json::Map<String, Value>, ArmError> {
    match req.json()?.remove("properties") {
        Some(Value::Object(p)) => Ok(p),
        _ => Err(ArmError::bad_request("InvalidRequestContent", "The request must have a 'properties' object.")),
    }
}

async fn put_assignment(app: &App, req: &Req, scope: &str, name: &str) -> Result<Response, ArmError> {
    req.authorize("Microsoft.Authorization/roleAssignments/write", scope)?;
    guid(name, "InvalidRoleAssignmentId", "role assignment ID")?;
    let props = properties(req)?;
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    let role_id = text("roleDefinitionId")
        .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "'properties.roleDefinitionId' is required."))?;
    let role = role_id.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
    let principal = text("principalId")
        .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "'properties.principalId' is required."))?
        .to_ascii_lowercase();
    let tenant = subscription_of(scope).and_then(|s| req.access.tenant_of(s).map(str::to_string));
    let a = RoleAssignment { name: name.to_ascii_lowercase(), scope: scope.to_string(), role, principal_id: principal };
    let created = app
        .write(|core| {
            if !core.rbac.definitions.get(&a.role).is_some_and(|d| assignable_at(d, &a.scope)) {
                return Err(ArmError::bad_request(
                    "RoleDefinitionDoesNotExist",
                    format!("The specified role definition with ID '{}' does not exist.", a.role),
                ));
            }
            let known = core.principals.get(&a.principal_id);
            if !known.is_some_and(|sp| tenant.as_deref().is_none_or(|t| sp.member_of(t))) {
                return Err(ArmError::bad_request(
                    "PrincipalNotFound",
                    format!(
                        "Principal {} does not exist in the directory {}.",
                        a.principal_id,
                        tenant.as_deref().unwrap_or("of this server")
                    ),
                ));
            }
            if let Some(old) = core.rbac.assignments.get(&a.name) {
                if *old == a {
                    return Ok(false);
                }
                return Err(ArmError::bad_request(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ));
            }
            if core
                .rbac
                .assignments
                .values()
                .any(|o| o.principal_id == a.principal_id && o.role == a.role && o.scope.eq_ignore_ascii_case(&a.scope))
            {
                return Err(ArmError::with_status(409, "RoleAssignmentExists", "The role assignment already exists."));
            }
            core.put_assignment(a.clone());
            Ok(true)
        })
        .await?;
    Ok(json_value(if created { StatusCode::CREATED } else { StatusCode::OK }, &assignment_body(&a)))
}

async fn put_definition(app: &App, req: &Req, scope: &str, name: &str) -> Result<Response, ArmError> {
    req.authorize("Microsoft.Authorization/roleDefinitions/write", scope)?;
    guid(name, "InvalidRoleDefinitionId", "role definition ID")?;
    let props = properties(req)?;
    let role_name = props
        .get("roleName")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "'properties.roleName' is required."))?
        .to_string();
    let permissions: Vec<Permission> = match props.get("permissions") {
        Some(p) => serde_json::from_value(p.clone()).map_err(|e| {
            ArmError::bad_request("InvalidRequestContent", format!("'properties.permissions' is not valid: {e}"))
        })?,
        None => Vec::new(),
    };
    let assignable_scopes: Vec<String> = match props.get("assignableScopes") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ArmError::bad_request("InvalidRequestContent", format!("'properties.assignableScopes' is not valid: {e}"))
        })?,
        None => vec![scope.to_string()],
    };
    if assignable_scopes.is_empty() {
        return Err(ArmError::bad_request("InvalidAssignableScopes", "A custom role needs an assignable scope."));
    }
    req.authorize_all("Microsoft.Authorization/roleDefinitions/write", &assignable_scopes)?;
    let d = RoleDefinition {
        name: name.to_ascii_lowercase(),
        role_name,
        role_type: "CustomRole".to_string(),
        description: props.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
        permissions,
        assignable_scopes,
    };
    let created = app
        .write(|core| {
            let old = core.rbac.definitions.get(&d.name);
            if old.is_some_and(|o| o.role_type == "BuiltInRole") {
                return Err(ArmError::bad_request(
                    "RoleDefinitionCannotBeModified",
                    "A built-in role definition cannot be changed.",
                ));
            }
            // Replacing a role changes it wherever it could be assigned: the caller needs the
            // right at every assignable scope of the existing definition too (another tenant's
            // role fails here, on its tenant's scopes).
            if let Some(o) = old {
                req.authorize_all("Microsoft.Authorization/roleDefinitions/write", &o.assignable_scopes)?;
            }
            if core
                .rbac
                .definitions
                .values()
                .any(|o| o.name != d.name && o.role_name.eq_ignore_ascii_case(&d.role_name))
            {
                return Err(ArmError::with_status(
                    409,
                    "RoleDefinitionWithSameNameExists",
                    format!("A role definition cannot be updated with a name that already exists: '{}'.", d.role_name),
                ));
            }
            let created = old.is_none();
            core.put_definition(d.clone());
            Ok(created)
        })
        .await?;
    Ok(json_value(if created { StatusCode::CREATED } else { StatusCode::OK }, &definition_body(&d, scope)))
}

/// Tessera extension: `PUT /tessera/principals/{clientId}` with `{"tenantId", "displayName",
/// "guestTenants": [...], "secret"}` (a secret is made when none is given and returned once);
/// `GET` shows one (never its secret). Needs `Tessera/principals/write` (or read) at `/`.
async fn principal(app: &App, req: &Req, client_id: &str) -> Result<Response, ArmError> {
    guid(client_id, "InvalidClientId", "client id")?;
    let key = client_id.to_ascii_lowercase();
    let show = |sp: &ServicePrincipal| {
        json!({"clientId": sp.client_id, "tenantId": sp.tenant_id, "displayName": sp.display_name,
               "guestTenants": sp.guest_tenants})
    };
    match req.method {
        Method::GET => {
            req.authorize("Tessera/principals/read", "/")?;
            let core = app.core.read().await;
            let sp = core.principals.get(&key).ok_or_else(|| {
                ArmError::with_status(404, "PrincipalNotFound", format!("Principal {client_id} does not exist."))
            })?;
            Ok(json_value(StatusCode::OK, &show(sp)))
        }
        Method::PUT => {
            req.authorize("Tessera/principals/write", "/")?;
            let body = req.json()?;
            let tenant = body
                .get("tenantId")
                .and_then(Value::as_str)
                .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "'tenantId' is required."))?
                .to_ascii_lowercase();
            guid(&tenant, "InvalidTenantId", "tenant id")?;
            let guests: Vec<String> = body
                .get("guestTenants")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
                .unwrap_or_default();
            for g in &guests {
                guid(g, "InvalidTenantId", "tenant id")?;
            }
            let given = body.get("secret").and_then(Value::as_str).map(str::to_string);
            let secret = match &given {
                Some(s) if s.len() >= 16 => s.clone(),
                Some(_) => {
                    return Err(ArmError::bad_request("WeakSecret", "A client secret needs at least 16 characters."));
                }
                None => uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string(),
            };
            let display = body.get("displayName").and_then(Value::as_str).unwrap_or(client_id).to_string();
            let (created, sp) = app
                .write(|core| {
                    let old = core.principals.get(&key).cloned();
                    let sp = ServicePrincipal {
                        client_id: key.clone(),
                        tenant_id: tenant.clone(),
                        display_name: display.clone(),
                        secret_sha256: match (&given, &old) {
                            (None, Some(o)) => o.secret_sha256.clone(),
                            _ => sha256_hex(&secret),
                        },
                        guest_tenants: guests.clone(),
                    };
                    core.put_principal(sp.clone());
                    Ok((old.is_none(), sp))
                })
                .await?;
            let mut out = show(&sp);
            if created && given.is_none() {
                out["secret"] = Value::String(secret);
            }
            Ok(json_value(if created { StatusCode::CREATED } else { StatusCode::OK }, &out))
        }
        _ => Err(method_not_allowed(req)),
    }
}

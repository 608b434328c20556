//! Microsoft.Resources resource groups: create, read, tag, list, and delete (with everything
//! in them, in reverse dependency order).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tessera_engine::Change;
use tessera_model::{ArmError, Kind, ResourceId};

use crate::http::{App, OpHeaders, Req, finish_operation, json_value, page};
use crate::identity::{method_not_allowed, subscription_not_found};
use crate::operations::Operation;
use crate::route::Route;

/// 404 `ResourceGroupNotFound`.
pub(crate) fn group_not_found(rg: &str) -> ArmError {
    ArmError::with_status(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found."))
}

/// Checks a resource group name: 1–90 characters of letters, digits, `_ - . ( )`, not ending in `.`.
fn check_group_name(rg: &str) -> Result<(), ArmError> {
    let ok = !rg.is_empty()
        && rg.chars().count() <= 90
        && !rg.ends_with('.')
        && rg.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidResourceGroupName",
            format!(
                "Resource group name '{rg}' is invalid. It must be 1-90 characters of letters, digits, underscores, \
                 hyphens, periods and parentheses, and must not end with a period."
            ),
        ))
    }
}

pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    match &req.route {
        Route::ResourceGroups { sub } => {
            if req.method != Method::GET {
                return Err(method_not_allowed(req));
            }
            // As ARM does: a caller whose roles are on some resource groups lists those.
            let read = "Microsoft.Resources/subscriptions/resourceGroups/read";
            let whole = within_reach(req, read, sub)?;
            let core = app.core.read().await;
            core.check_scope(sub, None)?;
            let prefix = format!("{}/", sub.to_ascii_lowercase());
            let items: Vec<Bytes> = core
                .groups
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .filter(|(k, _)| {
                    whole
                        || k.split_once('/').is_some_and(|(_, rg)| {
                            req.authorize(read, &format!("/subscriptions/{sub}/resourceGroups/{rg}")).is_ok()
                        })
                })
                .map(|(_, g)| Bytes::from(g.body.to_string()))
                .collect();
            drop(core);
            page(app, req, &items)
        }
        Route::ResourceGroup { sub, rg } => one(app, req, sub, rg).await,
        Route::Locations { sub } if req.method == Method::GET => {
            req.authorize("Microsoft.Resources/subscriptions/read", &format!("/subscriptions/{sub}"))?;
            app.core.read().await.check_scope(sub, None)?;
            let items: Vec<Bytes> = tessera_model::location::LOCATIONS
                .iter()
                .map(|l| {
                    Bytes::from(
                        json!({
                            "id": format!("/subscriptions/{sub}/locations/{}", l.name),
                            "name": l.name,
                            "type": "Region",
                            "displayName": l.display_name,
                            "regionalDisplayName": l.display_name,
                            "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
                        })
                        .to_string(),
                    )
                })
                .collect();
            page(app, req, &items)
        }
        Route::Resources { sub, rg } if req.method == Method::GET => resources(app, req, sub, rg.as_deref()).await,
        _ => Err(method_not_allowed(req)),
    }
}

/// Whether the caller may do `action` on the whole subscription (`true`), or holds a role only
/// somewhere inside it (`false`: a list shows what it may read there); 403 (or 401 for another
/// tenant's token) when it holds none.
fn within_reach(req: &Req, action: &str, sub: &str) -> Result<bool, ArmError> {
    let scope = format!("/subscriptions/{sub}");
    match req.authorize(action, &scope) {
        Ok(()) => Ok(true),
        Err(e) if e.status == 403 && req.access.rbac.sees(&req.principal()?.client_id, &scope) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `…/resources`: every resource of a subscription or resource group, in the generic shape
/// (`id`, `name`, `type`, `location`, `tags`), as `az resource list` and Ansible read them.
async fn resources(app: &App, req: &Req, sub: &str, rg: Option<&str>) -> Result<Response, ArmError> {
    match rg {
        Some(rg) => req.authorize(
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            &format!("/subscriptions/{sub}/resourceGroups/{rg}"),
        )?,
        // A caller with roles only on some of its resource groups lists what it may read there.
        None => {
            within_reach(req, "Microsoft.Resources/subscriptions/read", sub)?;
        }
    }
    let core = app.core.read().await;
    core.check_scope(sub, rg)?;
    // Only what the caller may read, type by type (a group-scoped right to read the group
    // does not read every resource in it).
    let items: Vec<Bytes> = core
        .docs_in(sub, rg)
        .into_iter()
        .filter(|(id, _)| req.authorize(&format!("{}/read", id.kind().arm_type()), id.as_str()).is_ok())
        .map(|(_, doc)| {
            let d = &doc.raw;
            let mut generic = json!({"id": d["id"], "name": d["name"], "type": d["type"], "location": d["location"]});
            if let (Some(tags), Some(o)) = (d.get("tags"), generic.as_object_mut()) {
                o.insert("tags".into(), tags.clone());
            }
            Bytes::from(generic.to_string())
        })
        .collect();
    drop(core);
    page(app, req, &items)
}

async fn one(app: &App, req: &Req, sub: &str, rg: &str) -> Result<Response, ArmError> {
    let scope = format!("/subscriptions/{sub}/resourceGroups/{rg}");
    match req.method {
        Method::GET | Method::HEAD => {
            req.authorize("Microsoft.Resources/subscriptions/resourceGroups/read", &scope)?;
            let core = app.core.read().await;
            let found = core.group(sub, rg).map(|g| g.body.clone());
            match (found, req.method == Method::HEAD) {
                (Some(_), true) => Ok(StatusCode::NO_CONTENT.into_response()),
                (None, true) => Ok(StatusCode::NOT_FOUND.into_response()),
                (Some(body), false) => Ok(json_value(StatusCode::OK, &body)),
                (None, false) => Err(group_not_found(rg)),
            }
        }
        Method::PUT | Method::PATCH => {
            req.authorize("Microsoft.Resources/subscriptions/resourceGroups/write", &scope)?;
            check_group_name(rg)?;
            let body = req.json()?;
            let patch = req.method == Method::PATCH;
            // PATCH without `tags` keeps them (ARM merges a PATCH); PUT replaces the group.
            let given_tags = body.get("tags").cloned();
            if given_tags.as_ref().is_some_and(|t| !t.is_object()) {
                return Err(ArmError::bad_request("InvalidRequestContent", "tags must be an object of strings."));
            }
            if given_tags.as_ref().and_then(Value::as_object).is_some_and(|t| t.values().any(|v| !v.is_string())) {
                return Err(ArmError::bad_request("InvalidRequestContent", "Tag values must be strings."));
            }
            let location = body.get("location").and_then(Value::as_str).map(str::to_string);
            let (status, doc) = app
                .write(|core| {
                    let Some(subscription) = core.engine.state().subscriptions.get(&sub.to_ascii_lowercase()).cloned()
                    else {
                        return Err(subscription_not_found(sub));
                    };
                    let existing = core.group(sub, rg).map(|g| g.body.clone());
                    let location = match (&existing, location.clone(), patch) {
                        (Some(old), _, true) => old["location"].as_str().unwrap_or_default().to_string(),
                        (None, _, true) => return Err(group_not_found(rg)),
                        (_, Some(l), false) => {
                            tessera_model::location::find(&l).map(|l| l.name.to_string()).ok_or_else(|| {
                                ArmError::bad_request(
                                    "LocationNotAvailableForResourceGroup",
                                    format!("The provided location '{l}' is not available for resource group."),
                                )
                            })?
                        }
                        (_, None, false) => {
                            return Err(ArmError::bad_request(
                                "LocationRequired",
                                "The location property is required for this definition.",
                            ));
                        }
                    };
                    let kept = existing.as_ref().filter(|_| patch).and_then(|old| old.get("tags").cloned());
                    let tags = given_tags.clone().or(kept).unwrap_or(json!({}));
                    // A group keeps the spelling of its first creation (ARM is case-preserving).
                    let name = existing
                        .as_ref()
                        .and_then(|g| g["name"].as_str().map(str::to_string))
                        .unwrap_or(rg.to_string());
                    let doc = json!({
                        "id": format!("/subscriptions/{}/resourceGroups/{name}", subscription.subscription_id),
                        "name": name,
                        "type": "Microsoft.Resources/resourceGroups",
                        "location": location,
                        "tags": tags,
                        "properties": {"provisioningState": "Succeeded"},
                    });
                    let created = core.put_group(sub, rg, doc.clone());
                    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, doc))
                })
                .await?;
            Ok(json_value(status, &doc))
        }
        Method::DELETE => {
            req.authorize("Microsoft.Resources/subscriptions/resourceGroups/delete", &scope)?;
            let (location, outcome) = app.write(|core| delete_group(core, sub, rg)).await?;
            let mut r = StatusCode::ACCEPTED.into_response();
            finish_operation(
                app,
                req,
                &mut r,
                (sub, "Microsoft.Resources", &location),
                Operation { error: outcome.err(), result: None },
                OpHeaders::Both,
            );
            Ok(r)
        }
        _ => Err(method_not_allowed(req)),
    }
}

/// The order resources leave a group: dependents first.
fn delete_rank(kind: Kind) -> u8 {
    match kind {
        Kind::Connection => 0,
        Kind::VirtualMachine => 1,
        Kind::NetworkInterface => 2,
        Kind::LoadBalancer | Kind::VirtualNetworkGateway => 3,
        Kind::VirtualNetwork | Kind::ClassicVirtualNetwork => 4,
        // Security rules and NICs name application security groups: they go last.
        Kind::ApplicationSecurityGroup => 6,
        _ => 5,
    }
}

/// Deletes every resource of the group, then the group. A refusal stops the deletion (what is
/// already deleted stays deleted, as in ARM) and fails the operation.
fn delete_group(core: &mut crate::core::Core, sub: &str, rg: &str) -> Result<(String, Result<(), ArmError>), ArmError> {
    let group = core.group(sub, rg).ok_or_else(|| group_not_found(rg))?;
    let location = group.body["location"].as_str().unwrap_or_default().to_string();
    let in_group =
        |id: &ResourceId| id.subscription().eq_ignore_ascii_case(sub) && id.resource_group().eq_ignore_ascii_case(rg);
    let mut ids: Vec<ResourceId> = core.docs.keys().filter(|id| in_group(id)).cloned().collect();
    ids.sort_by_key(|id| (delete_rank(id.kind()), id.key().to_string()));
    for id in ids {
        if let Err(e) = core.apply(vec![Change::Delete(id)]) {
            return Ok((location, Err(e)));
        }
    }
    let aux: Vec<ResourceId> = core.aux.keys().filter(|id| in_group(id)).cloned().collect();
    for id in aux {
        core.delete_aux(&id);
    }
    core.delete_group(sub, rg);
    Ok((location, Ok(())))
}

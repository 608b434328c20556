//! `tessera login`, `tessera principal create` and `tessera role assign|list`: signing in as a
//! principal (the token is kept in a file, as `az login` keeps its own), making service
//! principals (and guests of other tenants), and role assignments through the
//! Microsoft.Authorization API.

use std::path::Path;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_agent::session::Session;
use tessera_model::ArmError;

use crate::remote::Remote;

const AUTH_API: &str = "api-version=2022-04-01";

fn runtime() -> Result<tokio::runtime::Runtime, ArmError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ArmError::with_status(500, "RuntimeFailed", e.to_string()))
}

fn write_private(path: &Path, body: &Value) -> Result<(), ArmError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| ArmError::with_status(500, "CannotWrite", format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(failed)?;
    f.write_all(body.to_string().as_bytes()).map_err(failed)
}

/// `tessera login`: signs in as a principal of a tenant and keeps the token in `out`.
pub(crate) fn login(
    server: &Path,
    tenant: &str,
    client_id: &str,
    secret: &str,
    subscription: Option<&str>,
    out: &Path,
) -> Result<ExitCode, ArmError> {
    let rt = runtime()?;
    let (session, ca, expires) = rt.block_on(Session::sign_in_as(server, tenant, client_id, secret))?;
    let url = format!("{}/subscriptions?api-version=2022-12-01", session.endpoint);
    let listed: Value = rt
        .block_on(async { session.client.get(url).bearer_auth(&session.token).send().await?.json().await })
        .map_err(tessera_agent::session::unreachable)?;
    let visible: Vec<String> = listed["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["subscriptionId"].as_str().map(str::to_string))
        .collect();
    let chosen = match subscription {
        Some(s) => s.to_string(),
        None => visible.first().cloned().unwrap_or_default(),
    };
    write_private(
        out,
        &json!({"endpoint": session.endpoint, "caCertificate": ca, "tenantId": tenant, "clientId": client_id,
                "subscriptionId": chosen, "accessToken": session.token, "expiresOn": expires}),
    )?;
    crate::emit!("logged in as {client_id} in tenant {tenant} (token in {}, until {expires})", out.display());
    for s in &visible {
        crate::emit!("  subscription {s}{}", if *s == chosen { " (default)" } else { "" });
    }
    Ok(ExitCode::SUCCESS)
}

/// `tessera principal create`: a service principal with a new secret (shown once).
pub(crate) fn create_principal(
    credentials: &Path,
    tenant: &str,
    guest_of: &[String],
    name: &str,
) -> Result<ExitCode, ArmError> {
    let rt = runtime()?;
    let id = uuid::Uuid::new_v4();
    let body = json!({"tenantId": tenant, "displayName": name, "guestTenants": guest_of});
    let (_, v, _) = rt.block_on(async {
        let remote = Remote::connect(credentials).await?;
        remote.call(Method::PUT, &format!("/tessera/principals/{id}"), Some(&body)).await
    })?;
    crate::emit!("client id      {id}");
    crate::emit!("tenant         {tenant}");
    if !guest_of.is_empty() {
        crate::emit!("guest of       {}", guest_of.join(", "));
    }
    crate::emit!("client secret  {}", v["secret"].as_str().unwrap_or("(unchanged)"));
    Ok(ExitCode::SUCCESS)
}

/// `tessera role assign`: gives a principal a role (by name or GUID) at a scope.
pub(crate) fn assign(credentials: &Path, principal: &str, role: &str, scope: &str) -> Result<ExitCode, ArmError> {
    let rt = runtime()?;
    let scope = scope.trim_end_matches('/');
    let (role_id, shown) = rt.block_on(async {
        let remote = Remote::connect(credentials).await?;
        let defs = format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?{AUTH_API}");
        let (_, list, _) = remote.call(Method::GET, &defs, None).await?;
        let found = list["value"].as_array().into_iter().flatten().find(|d| {
            d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(role))
                || d["properties"]["roleName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(role))
        });
        let d = found.ok_or_else(|| {
            ArmError::bad_request("RoleDefinitionDoesNotExist", format!("no role named '{role}' at {scope}"))
        })?;
        let role_id = d["id"].as_str().unwrap_or_default().to_string();
        let body = json!({"properties": {"roleDefinitionId": role_id, "principalId": principal}});
        let path =
            format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{AUTH_API}", uuid::Uuid::new_v4());
        let (_, made, _) = remote.call(Method::PUT, &path, Some(&body)).await?;
        Ok::<_, ArmError>((role_id, made))
    })?;
    crate::emit!(
        "assigned {} to {principal} at {scope}",
        shown["properties"]["roleDefinitionId"].as_str().unwrap_or(&role_id)
    );
    Ok(ExitCode::SUCCESS)
}

/// `tessera role list`: the role assignments at, above and below a scope.
pub(crate) fn list(credentials: &Path, scope: &str) -> Result<ExitCode, ArmError> {
    let rt = runtime()?;
    let scope = scope.trim_end_matches('/');
    let (_, v, _) = rt.block_on(async {
        let remote = Remote::connect(credentials).await?;
        remote
            .call(Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments?{AUTH_API}"), None)
            .await
    })?;
    for a in v["value"].as_array().into_iter().flatten() {
        let p = &a["properties"];
        crate::emit!(
            "{:<38} {:<40} {}",
            p["principalId"].as_str().unwrap_or("?"),
            p["roleDefinitionId"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or("?"),
            p["scope"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

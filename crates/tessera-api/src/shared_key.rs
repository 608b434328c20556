//! A connection's pre-shared key as Azure serves it apart (`…/connections/{name}/sharedkey`):
//! `GetSharedKey` reads it (`connections/sharedKey/read`), `SetSharedKey` replaces it
//! (`connections/sharedKey/write`; the engine checks the key as on a PUT of the connection).
//! The agents give both ends of the tunnel the new key.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tessera_engine::Change;
use tessera_model::{ArmError, Resource, ResourceId};

use crate::http::{App, Req, json_value};
use crate::identity::method_not_allowed;

fn not_found(conn: &ResourceId) -> ArmError {
    ArmError::resource_not_found(&conn.type_and_name(), conn.resource_group())
}

fn body(conn: &ResourceId, value: &str) -> Value {
    json!({"id": format!("{conn}/sharedkey"), "value": value})
}

pub(crate) async fn handle(app: &App, req: &Req, conn: &ResourceId) -> Result<Response, ArmError> {
    if req.method == Method::GET {
        req.authorize("Microsoft.Network/connections/sharedKey/read", conn.as_str())?;
        let core = app.core.read().await;
        core.check_scope(conn.subscription(), Some(conn.resource_group()))?;
        let c = core.engine.state().connections.get(conn).ok_or_else(|| not_found(conn))?;
        let value = c.properties.shared_key.clone().unwrap_or_default();
        return Ok(json_value(StatusCode::OK, &body(conn, &value)));
    }
    if req.method != Method::PUT {
        return Err(method_not_allowed(req));
    }
    req.authorize("Microsoft.Network/connections/sharedKey/write", conn.as_str())?;
    let request = req.json()?;
    let value =
        request.get("value").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            ArmError::bad_request("InvalidRequestContent", "SetSharedKey needs 'value', the new key.")
        })?;
    app.write(|core| {
        core.check_scope(conn.subscription(), Some(conn.resource_group()))?;
        let mut c = core.engine.state().connections.get(conn).cloned().ok_or_else(|| not_found(conn))?;
        c.properties.shared_key = Some(value.clone());
        core.apply(vec![Change::Put(Resource::Connection(c))])?;
        Ok(())
    })
    .await?;
    Ok(json_value(StatusCode::OK, &body(conn, &value)))
}

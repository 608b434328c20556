//! Peering usage: agents report what crossed ($1–$7), clients read it as Azure bills it.
//!
//! `POST /tessera/hosts/{host}/usage` takes an agent's running totals (`Tessera/hosts/write`;
//! counted once, see `tessera_engine::metering`). `GET /subscriptions/{sub}/providers/
//! Microsoft.Consumption/usageDetails` serves the subscription's hourly records in the
//! `legacy` usage-detail shape of api-version 2023-05-01, with the older names `az consumption
//! usage list` reads beside them (usageStart, usageEnd, usageQuantity, pretaxCost, instanceId),
//! priced with the server's price sheet; `$filter` on usageStart, usageEnd, date,
//! resourceGroup, instanceName, instanceId or resourceId with eq, lt, gt, le, ge and `and`
//! (as the API documents it: no `or`, `ne` or `not`); without a filter the current month.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tessera_engine::metering::{HOUR, Taken, UsageRecord, UsageReport};
use tessera_engine::pricing::PriceSheet;
use tessera_model::ArmError;

use crate::http::{App, Req, json, page_of};
use crate::identity::method_not_allowed;

/// `POST /tessera/hosts/{host}/usage`: an agent's usage report.
pub(crate) async fn report(app: &App, req: &Req, host: &str) -> Result<Response, ArmError> {
    if req.method != Method::POST {
        return Err(method_not_allowed(req));
    }
    req.authorize("Tessera/hosts/write", &format!("/tessera/hosts/{host}"))?;
    crate::feed::check_host(host)?;
    let report: UsageReport = serde_json::from_slice(&req.body)
        .map_err(|e| ArmError::bad_request("InvalidUsageReport", format!("The body is not a usage report: {e}")))?;
    let now = crate::auth::now();
    let taken = app.write(|core| core.take_usage(host, &report, now)).await?;
    let body = match taken {
        Taken::Duplicate => json!({"run": report.run, "sequence": report.sequence, "counted": false}),
        Taken::Counted { records, unbilled, .. } => {
            if unbilled > 0 {
                tracing::warn!(host, unbilled, "usage of VNets no longer known is not billed");
            }
            json!({"run": report.run, "sequence": report.sequence, "counted": true, "records": records.len()})
        }
    };
    Ok(json(StatusCode::OK, body.to_string()))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch.
pub(crate) fn timestamp(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Seconds since the epoch of `YYYY-MM-DD`, or of a time as clients send it (`Z`, `+00:00` or
/// none; fractions of a second).
pub(crate) fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let full = if s.len() == 10 { format!("{s}T00:00:00") } else { s.to_string() };
    let full = full.strip_suffix("+00:00").or_else(|| full.strip_suffix('Z')).unwrap_or(&full);
    let t = humantime::parse_rfc3339_weak(full).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The first second of the month holding `secs`, and of the next month.
fn month_of(secs: u64) -> (u64, u64) {
    let stamp = timestamp(secs);
    let (year, month): (u64, u64) = (stamp[0..4].parse().unwrap_or(1970), stamp[5..7].parse().unwrap_or(1));
    let first = |y: u64, m: u64| parse_time(&format!("{y:04}-{m:02}-01")).unwrap_or(0);
    let next = if month == 12 { first(year + 1, 1) } else { first(year, month + 1) };
    (first(year, month), next)
}

/// A comparison of one `$filter` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

/// One `$filter` clause: `properties/<field> <op> '<value>'`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clause {
    Time { field: TimeField, op: Op, at: u64 },
    Text { field: TextField, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeField {
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    ResourceGroup,
    InstanceName,
    InstanceId,
}

fn invalid_filter(why: impl std::fmt::Display) -> ArmError {
    ArmError::bad_request("InvalidFilter", format!("The $filter is not valid: {why}"))
}

/// Parses `$filter`: clauses joined by `and`.
fn parse_filter(text: &str) -> Result<Vec<Clause>, ArmError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (field, after) = rest.split_once(char::is_whitespace).ok_or_else(|| invalid_filter(rest))?;
        let (op, after) = after.trim_start().split_once(char::is_whitespace).ok_or_else(|| invalid_filter(rest))?;
        let after = after.trim_start();
        let value_end = after.get(1..).and_then(|a| a.find('\'')).filter(|_| after.starts_with('\''));
        let end = value_end.ok_or_else(|| invalid_filter(format!("'{after}' is not a quoted value")))?;
        let value = &after[1..=end];
        rest = after[end + 2..].trim_start();
        if !rest.is_empty() {
            let (and, more) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if !and.eq_ignore_ascii_case("and") || more.trim().is_empty() {
                return Err(invalid_filter(format!("'{and}' is not supported; clauses are joined by 'and'")));
            }
            rest = more.trim_start();
        }
        let op = match op.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "lt" => Op::Lt,
            "gt" => Op::Gt,
            "le" => Op::Le,
            "ge" => Op::Ge,
            other => return Err(invalid_filter(format!("the operator '{other}' is not supported"))),
        };
        let name = field.strip_prefix("properties/").unwrap_or(field).to_ascii_lowercase();
        let time = match name.as_str() {
            "usagestart" | "date" => Some(TimeField::Start),
            "usageend" => Some(TimeField::End),
            _ => None,
        };
        let clause = match time {
            Some(field) => Clause::Time {
                field,
                op,
                at: parse_time(value).ok_or_else(|| invalid_filter(format!("'{value}' is not a date")))?,
            },
            None => {
                let field = match name.as_str() {
                    "resourcegroup" => TextField::ResourceGroup,
                    "instancename" | "resourcename" => TextField::InstanceName,
                    "instanceid" | "resourceid" => TextField::InstanceId,
                    other => return Err(invalid_filter(format!("the field '{other}' cannot be filtered"))),
                };
                if op != Op::Eq {
                    return Err(invalid_filter(format!("'{field:?}' is compared with eq only")));
                }
                Clause::Text { field, value: value.to_string() }
            }
        };
        out.push(clause);
    }
    Ok(out)
}

fn compare(op: Op, have: u64, want: u64) -> bool {
    match op {
        Op::Eq => have == want,
        Op::Lt => have < want,
        Op::Gt => have > want,
        Op::Le => have <= want,
        Op::Ge => have >= want,
    }
}

/// The first and last second of a record's hour.
fn span(r: &UsageRecord) -> (u64, u64) {
    let start = r.key.hour * HOUR;
    (start, start + HOUR - 1)
}

fn matches(r: &UsageRecord, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match c {
        Clause::Time { field, op, at } => {
            let (start, end) = span(r);
            compare(*op, if *field == TimeField::Start { start } else { end }, *at)
        }
        Clause::Text { field: TextField::ResourceGroup, value } => {
            r.key.vnet.resource_group().eq_ignore_ascii_case(value)
        }
        Clause::Text { field: TextField::InstanceName, value } => r.key.vnet.name().eq_ignore_ascii_case(value),
        Clause::Text { field: TextField::InstanceId, value } => r.key.vnet.as_str().eq_ignore_ascii_case(value),
    })
}

/// A stable GUID for a string (record and meter ids).
fn guid_of(s: &str) -> String {
    let hash = |seed: u64| {
        s.bytes().fold(seed, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0000_0100_0000_01b3))
    };
    let value = (u128::from(hash(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(hash(0x84222325_cbf29ce4));
    uuid::Builder::from_u128(value).with_version(uuid::Version::Random).into_uuid().to_string()
}

/// One record as Azure's usage detail (`kind: legacy`).
fn detail(r: &UsageRecord, sheet: &PriceSheet, subscription_name: &str, expand: &str) -> Value {
    let sub = r.key.vnet.subscription();
    let (start, end) = span(r);
    let name = guid_of(&format!("{}|{}|{}|{:?}", r.key.hour, r.key.vnet, r.key.remote, r.key.direction));
    let meter_name = r.meter.name();
    let rate = sheet.rate(r.meter);
    let cost = r.cost(sheet);
    let (period_start, period_end) = month_of(start);
    let info = json!({"virtualNetworkPeering": r.link.as_ref().map(|l| l.as_str()),
                      "remoteVirtualNetwork": r.key.remote.as_str(), "bytes": r.bytes, "packets": r.packets});
    let mut props = json!({
        "billingPeriodStartDate": timestamp(period_start),
        "billingPeriodEndDate": timestamp(period_end - 1),
        "subscriptionId": sub,
        "subscriptionGuid": sub,
        "subscriptionName": subscription_name,
        "date": timestamp(start),
        "usageStart": timestamp(start),
        "usageEnd": timestamp(end),
        "product": format!("Virtual Network Peering - {meter_name}"),
        "meterId": guid_of(&meter_name),
        "quantity": r.gb(),
        "usageQuantity": r.gb(),
        "billableQuantity": r.gb(),
        "effectivePrice": rate,
        "unitPrice": rate,
        "payGPrice": rate,
        "cost": cost,
        "pretaxCost": cost,
        "billingCurrency": sheet.currency,
        "currency": sheet.currency,
        "resourceLocation": r.location,
        "instanceLocation": r.location,
        "consumedService": "Microsoft.Network",
        "resourceId": r.key.vnet.as_str(),
        "instanceId": r.key.vnet.as_str(),
        "resourceName": r.key.vnet.name(),
        "instanceName": r.key.vnet.name(),
        "resourceGroup": r.key.vnet.resource_group(),
        "chargeType": "Usage",
        "frequency": "UsageBased",
        "pricingModel": "OnDemand",
        "isAzureCreditEligible": true,
        "isEstimated": true,
    });
    let expand = expand.to_ascii_lowercase();
    if expand.contains("additionalproperties") || expand.contains("additionalinfo") {
        props["additionalInfo"] = json!(info.to_string());
        props["additionalProperties"] = json!(info.to_string());
    }
    if expand.contains("meterdetails") {
        props["meterDetails"] = json!({
            "meterName": meter_name, "meterCategory": "Virtual Network", "meterSubCategory": "Peering",
            "unitOfMeasure": "1 GB", "unit": "1 GB", "serviceFamily": "Networking",
            "meterLocation": r.location, "pretaxStandardRate": rate, "totalIncludedQuantity": 0,
        });
    }
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.Consumption/usageDetails/{name}"),
        "name": name,
        "type": "Microsoft.Consumption/usageDetails",
        "kind": "legacy",
        "tags": {},
        "properties": props,
    })
}

/// `GET /subscriptions/{sub}/providers/Microsoft.Consumption/usageDetails`.
pub(crate) async fn list(app: &App, req: &Req, sub: &str) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    req.authorize("Microsoft.Consumption/usageDetails/read", &format!("/subscriptions/{sub}"))?;
    let clauses = parse_filter(req.query("$filter").unwrap_or_default())?;
    let (from, to) = if clauses.iter().any(|c| matches!(c, Clause::Time { .. })) {
        (0, u64::MAX)
    } else {
        month_of(crate::auth::now())
    };
    let top = match req.query("$top") {
        None => usize::MAX,
        Some(t) => t.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
            ArmError::bad_request("InvalidTop", format!("$top is a number from 1 to 1000, not '{t}'."))
        })?,
    };
    let expand = req.query("$expand").unwrap_or_default();
    let core = app.core.read().await;
    core.check_scope(sub, None)?;
    let name = core
        .engine
        .state()
        .subscriptions
        .get(&sub.to_ascii_lowercase())
        .map(|s| s.display_name.clone())
        .unwrap_or_default();
    // Only the page's own records are rendered.
    let records: Vec<&UsageRecord> =
        core.meterbook.records_of(sub, from, to).filter(|r| matches(r, &clauses)).take(top).collect();
    page_of(app, req, records.len(), |i| {
        Bytes::from(detail(records[i], &app.settings.prices, &name, expand).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_as_the_api_documents_them() {
        let f = parse_filter(
            "properties/usageEnd ge '2026-12-01T00:00:00Z' and properties/usageEnd le '2026-12-05T00:00:00Z'",
        )
        .expect("az's filter");
        assert_eq!(
            f,
            vec![
                Clause::Time { field: TimeField::End, op: Op::Ge, at: parse_time("2026-12-01").expect("a date") },
                Clause::Time { field: TimeField::End, op: Op::Le, at: parse_time("2026-12-05").expect("a date") },
            ]
        );
        assert!(parse_filter("properties/resourceGroup eq 'hub'").is_ok());
        for bad in [
            "properties/usageEnd ge '2026-12-01' or properties/usageEnd le '2026-12-05'",
            "properties/usageEnd ne '2026-12-01'",
            "properties/usageEnd ge 2026-12-01",
            "properties/usageEnd ge 'tomorrow'",
            "properties/cost gt '3'",
            "properties/resourceGroup gt 'a'",
            "properties/usageEnd ge '2026-12-01' and",
        ] {
            assert_eq!(parse_filter(bad).map_err(|e| e.code), Err("InvalidFilter".to_string()), "{bad}");
        }
    }

    #[test]
    fn months_and_times() {
        let at = parse_time("2026-12-05T10:23:18Z").expect("a time");
        assert_eq!(timestamp(at), "2026-12-05T10:23:18Z");
        let (a, b) = month_of(at);
        assert_eq!((timestamp(a).as_str(), timestamp(b).as_str()), ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(guid_of("x"), guid_of("X"));
        assert_ne!(guid_of("x"), guid_of("y"));
    }
}

//! `tessera usage`: what the server metered on peerings ($1–$7), read through its
//! `Microsoft.Consumption/usageDetails` and summed per peering link and meter, with the cost,
//! as a table, JSON or CSV.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use tessera_model::ArmError;

use crate::remote::Remote;

/// The api-version of Microsoft.Consumption this client speaks.
const CONSUMPTION_API: &str = "2023-05-01";

/// How `tessera usage` prints.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsageFormat {
    /// A table per link and meter.
    Table,
    /// The rows as JSON.
    Json,
    /// The rows as CSV (a header line first).
    Csv,
}

/// One peering link's meter over the period.
#[derive(Debug, Default, Clone)]
struct Row {
    bytes: u64,
    gb: f64,
    cost: Option<f64>,
    currency: String,
}

/// (subscription, billed VNet, link, remote VNet, meter).
type RowKey = (String, String, String, String, String);

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The `$filter` of a period: hours starting at or after `start`, before `end`.
fn filter(start: Option<&str>, end: Option<&str>) -> String {
    let mut clauses = Vec::new();
    if let Some(s) = start {
        clauses.push(format!("properties/usageStart ge '{s}'"));
    }
    if let Some(e) = end {
        clauses.push(format!("properties/usageStart lt '{e}'"));
    }
    if clauses.is_empty() { String::new() } else { format!("&$filter={}", clauses.join(" and ")) }
}

/// Sums usage details per link and meter.
fn rows(details: &[Value]) -> BTreeMap<RowKey, Row> {
    let mut out: BTreeMap<RowKey, Row> = BTreeMap::new();
    for d in details {
        let p = &d["properties"];
        let info: Value = serde_json::from_str(p["additionalInfo"].as_str().unwrap_or("{}")).unwrap_or_default();
        let key = (
            text(&p["subscriptionId"]),
            text(&p["resourceId"]),
            text(&info["virtualNetworkPeering"]),
            text(&info["remoteVirtualNetwork"]),
            text(&p["meterDetails"]["meterName"]),
        );
        let r = out.entry(key).or_default();
        r.bytes += info["bytes"].as_u64().unwrap_or(0);
        r.gb += p["quantity"].as_f64().unwrap_or(0.0);
        r.cost = match (r.cost, p["cost"].as_f64()) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) => b,
            (a, None) => a,
        };
        r.currency = text(&p["billingCurrency"]);
    }
    out
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

fn cost_text(c: Option<f64>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c:.6}"))
}

/// Runs `tessera usage`.
pub(crate) fn run(
    credentials: &Path,
    subscription: Option<String>,
    start: Option<String>,
    end: Option<String>,
    format: UsageFormat,
) -> Result<ExitCode, ArmError> {
    let rt = crate::target::runtime()?;
    let details = rt.block_on(async {
        let remote = Remote::connect(credentials).await?;
        let subs = match subscription {
            Some(s) => vec![s],
            None => remote.list("/subscriptions").await?.iter().map(|s| text(&s["subscriptionId"])).collect(),
        };
        let mut all = Vec::new();
        for s in subs {
            let path = format!(
                "/subscriptions/{s}/providers/Microsoft.Consumption/usageDetails?api-version={CONSUMPTION_API}\
                 &$expand=properties/meterDetails,properties/additionalInfo{}",
                filter(start.as_deref(), end.as_deref())
            );
            all.extend(remote.list(&path).await?);
        }
        Ok::<_, ArmError>(all)
    })?;
    let rows = rows(&details);
    match format {
        UsageFormat::Json => {
            let items: Vec<Value> = rows
                .iter()
                .map(|((sub, vnet, link, remote, meter), r)| {
                    json!({"subscriptionId": sub, "virtualNetwork": vnet, "virtualNetworkPeering": link,
                           "remoteVirtualNetwork": remote, "meter": meter, "bytes": r.bytes, "gb": r.gb,
                           "cost": r.cost, "currency": r.currency})
                })
                .collect();
            crate::print_json(&json!({ "value": items }));
        }
        UsageFormat::Csv => {
            crate::emit!(
                "subscriptionId,virtualNetwork,virtualNetworkPeering,remoteVirtualNetwork,meter,bytes,gb,cost,currency"
            );
            for ((sub, vnet, link, remote, meter), r) in &rows {
                crate::emit!(
                    "{sub},{vnet},{link},{remote},{meter},{},{:.9},{},{}",
                    r.bytes,
                    r.gb,
                    r.cost.map(|c| format!("{c:.6}")).unwrap_or_default(),
                    r.currency
                );
            }
        }
        UsageFormat::Table => {
            crate::emit!(
                "{:<16} {:<16} {:<20} {:<34} {:>14} {:>12} {:>10}",
                "VNET",
                "PEERING",
                "REMOTE VNET",
                "METER",
                "BYTES",
                "GB",
                "COST"
            );
            let mut total: BTreeMap<String, f64> = BTreeMap::new();
            for ((_, vnet, link, remote, meter), r) in &rows {
                crate::emit!(
                    "{:<16} {:<16} {:<20} {:<34} {:>14} {:>12.6} {:>10}",
                    last_segment(vnet),
                    if link.is_empty() { "-" } else { last_segment(link) },
                    last_segment(remote),
                    meter,
                    r.bytes,
                    r.gb,
                    cost_text(r.cost)
                );
                *total.entry(r.currency.clone()).or_default() += r.cost.unwrap_or(0.0);
            }
            if rows.is_empty() {
                crate::emit!("(no peering usage in the period)");
            }
            for (currency, sum) in total {
                crate::emit!("total: {sum:.6} {currency}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

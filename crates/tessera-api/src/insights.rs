//! Azure Monitor's metrics API for a virtual network (`{vnet}/providers/Microsoft.Insights/
//! metrics` and `…/metricDefinitions`, as `az monitor metrics list` asks): the bytes and packets
//! that crossed the VNet's peerings, out of it and into it, from the meter book. Azure itself
//! publishes no peering byte counts for a VNet (its VNet metrics are DDoS and ping mesh), so
//! the names are Tessera's: `PeeringBytesOut`, `PeeringBytesIn`, `PeeringPacketsOut`,
//! `PeeringPacketsIn`, each with the dimension `RemoteVirtualNetwork`. Grains under an hour
//! come from the per-minute series (the last day), an hour and more from the hourly records.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tessera_engine::metering::{HOUR, Meterbook, UsageKey};
use tessera_engine::pricing::Direction;
use tessera_model::{ArmError, Kind, ResourceId};

use crate::http::{App, Req, json_value};
use crate::identity::method_not_allowed;
use crate::usage::{parse_time, timestamp};

/// (name, display name, direction, bytes or packets).
const METRICS: &[(&str, &str, Direction, bool)] = &[
    ("PeeringBytesOut", "Bytes out over peerings", Direction::Egress, true),
    ("PeeringBytesIn", "Bytes in over peerings", Direction::Ingress, true),
    ("PeeringPacketsOut", "Packets out over peerings", Direction::Egress, false),
    ("PeeringPacketsIn", "Packets in over peerings", Direction::Ingress, false),
];
const DIMENSION: &str = "RemoteVirtualNetwork";
/// Grains served (ISO 8601 durations, seconds).
const GRAINS: &[(&str, u64)] = &[
    ("PT1M", 60),
    ("PT5M", 300),
    ("PT15M", 900),
    ("PT30M", 1800),
    ("PT1H", 3600),
    ("PT6H", 21_600),
    ("PT12H", 43_200),
    ("P1D", 86_400),
];
/// Most points in one time series.
const MAX_POINTS: u64 = 10_000;
/// Most points in one answer (every series of every metric asked for).
const MAX_TOTAL_POINTS: usize = 100_000;

fn bad(message: impl Into<String>) -> ArmError {
    ArmError::bad_request("BadRequest", message)
}

/// `start/end` (once more percent-decoded when a client encoded it twice, as `az` does).
fn parse_timespan(raw: &str, now: u64) -> Result<(u64, u64), ArmError> {
    let decoded = if raw.contains('%') {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("t={raw}"))
            .ok()
            .and_then(|v| v.into_iter().next())
            .map_or_else(|| raw.to_string(), |(_, v)| v)
    } else {
        raw.to_string()
    };
    let (a, b) = decoded.split_once('/').ok_or_else(|| bad(format!("The timespan '{raw}' is not START/END.")))?;
    let (start, end) = (parse_time(a), parse_time(b));
    match (start, end) {
        (Some(s), Some(e)) if s < e => Ok((s, e.min(now.max(s + 1)))),
        _ => Err(bad(format!("The timespan '{decoded}' is not a valid time range."))),
    }
}

/// Which series a request splits by: none, every remote VNet, or one.
enum Split {
    None,
    All,
    One(String),
}

fn parse_filter(f: Option<&str>) -> Result<Split, ArmError> {
    let Some(f) = f.map(str::trim).filter(|f| !f.is_empty()) else { return Ok(Split::None) };
    let parts: Vec<&str> = f.splitn(3, char::is_whitespace).collect();
    match parts.as_slice() {
        [d, op, v] if d.eq_ignore_ascii_case(DIMENSION) && op.eq_ignore_ascii_case("eq") => {
            let v = v.trim().trim_matches('\'');
            Ok(if v == "*" { Split::All } else { Split::One(v.to_ascii_lowercase()) })
        }
        _ => {
            Err(bad(format!("The $filter '{f}' is not supported: the dimension is {DIMENSION} (eq '*' or eq 'name').")))
        }
    }
}

/// One bucket's aggregations over its slots (minutes or hours).
fn point(at: u64, slots: &[u64], aggregations: &[String]) -> Value {
    let mut p = json!({ "timeStamp": timestamp(at) });
    let total: u64 = slots.iter().sum();
    for a in aggregations {
        let (k, v) = match a.as_str() {
            "total" => ("total", total as f64),
            "count" => ("count", slots.len() as f64),
            "average" => ("average", if slots.is_empty() { 0.0 } else { total as f64 / slots.len() as f64 }),
            "maximum" => ("maximum", slots.iter().max().copied().unwrap_or(0) as f64),
            _ => ("minimum", slots.iter().min().copied().unwrap_or(0) as f64),
        };
        p[k] = json!(v);
    }
    p
}

/// One time series: the remote VNet it is split by (None: not split) and its points.
type Series = (Option<String>, Vec<Value>);

/// The series of one metric. `budget` is how many more points
/// the answer may hold; a metric that needs more is refused before its points are made.
fn series(
    book: &Meterbook,
    vnet: &ResourceId,
    metric: (Direction, bool),
    (start, end, grain): (u64, u64, u64),
    split: &Split,
    (aggregations, budget): (&[String], &mut usize),
) -> Result<Vec<Series>, ArmError> {
    let slot = if grain < HOUR { 60 } else { HOUR };
    let value = |k: &UsageKey, bytes: u64, packets: u64| -> Option<(Option<String>, u64, u64)> {
        if k.vnet != *vnet || k.direction != metric.0 {
            return None;
        }
        let remote = k.remote.name().to_ascii_lowercase();
        let key = match split {
            Split::None => None,
            Split::All => Some(remote),
            Split::One(want) if *want == remote || *want == k.remote.as_str().to_ascii_lowercase() => Some(remote),
            Split::One(_) => return None,
        };
        Some((key, k.hour * slot, if metric.1 { bytes } else { packets }))
    };
    let samples: Vec<(Option<String>, u64, u64)> = if slot == 60 {
        book.minutes.iter().filter_map(|(k, (b, p))| value(k, *b, *p)).collect()
    } else {
        book.records.values().filter_map(|r| value(&r.key, r.bytes, r.packets)).collect()
    };
    let mut sums: std::collections::BTreeMap<(Option<String>, u64), u64> = std::collections::BTreeMap::new();
    for (key, at, v) in samples {
        *sums.entry((key, at)).or_default() += v;
    }
    let mut keys: Vec<Option<String>> = sums.keys().map(|k| k.0.clone()).collect();
    keys.dedup();
    if keys.is_empty() && !matches!(split, Split::All) {
        keys.push(match split {
            Split::One(v) => Some(v.clone()),
            _ => None,
        });
    }
    let first = start - start % grain;
    let need = keys.len().saturating_mul(usize::try_from((end - first).div_ceil(grain)).unwrap_or(usize::MAX));
    *budget = budget.checked_sub(need).ok_or_else(|| {
        bad(format!(
            "The answer would hold more than {MAX_TOTAL_POINTS} points; narrow the timespan, the interval, the \
             metrics or the $filter."
        ))
    })?;
    Ok(keys
        .into_iter()
        .map(|key| {
            let points = (0..)
                .map(|i| first + i * grain)
                .take_while(|t| *t < end)
                .map(|t| {
                    let slots: Vec<u64> = (0..grain.div_ceil(slot))
                        .map(|j| t + j * slot)
                        .map(|s| sums.get(&(key.clone(), s)).copied().unwrap_or(0))
                        .collect();
                    point(t, &slots, aggregations)
                })
                .collect();
            (key, points)
        })
        .collect())
}

fn localized(v: &str, display: &str) -> Value {
    json!({"value": v, "localizedValue": display})
}

fn definitions(vnet: &ResourceId) -> Value {
    let items: Vec<Value> = METRICS
        .iter()
        .map(|(name, display, ..)| {
            json!({
                "id": format!("{vnet}/providers/microsoft.insights/metricdefinitions/{name}"),
                "resourceId": vnet.as_str(), "namespace": "Microsoft.Network/virtualNetworks",
                "name": localized(name, display), "displayDescription": display,
                "isDimensionRequired": false, "unit": if name.contains("Bytes") { "Bytes" } else { "Count" },
                "primaryAggregationType": "Total",
                "supportedAggregationTypes": ["Total", "Average", "Minimum", "Maximum", "Count"],
                "metricAvailabilities": GRAINS.iter().map(|(g, _)| json!({"timeGrain": g, "retention": "P93D"})).collect::<Vec<_>>(),
                "dimensions": [localized(DIMENSION, "Remote virtual network")],
            })
        })
        .collect();
    json!({ "value": items })
}

/// `GET {vnet}/providers/Microsoft.Insights/metrics` or `…/metricDefinitions`.
pub(crate) async fn handle(app: &App, req: &Req, target: &ResourceId, defs: bool) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let action = if defs { "Microsoft.Insights/metricDefinitions/read" } else { "Microsoft.Insights/metrics/read" };
    req.authorize(action, target.as_str())?;
    let now = crate::auth::now();
    let core = app.core.read().await;
    core.check_scope(target.subscription(), Some(target.resource_group()))?;
    if target.kind() != Kind::VirtualNetwork {
        return Err(bad(format!(
            "Tessera serves metrics for Microsoft.Network/virtualNetworks; '{}' has none.",
            target.kind().arm_type()
        )));
    }
    let vnet = core
        .engine
        .state()
        .vnets
        .get(target)
        .ok_or_else(|| ArmError::resource_not_found(&target.type_and_name(), target.resource_group()))?;
    if defs {
        return Ok(json_value(StatusCode::OK, &definitions(&vnet.id)));
    }
    let (start, end) = match req.query("timespan") {
        Some(t) => parse_timespan(t, now)?,
        None => (now.saturating_sub(HOUR), now),
    };
    let interval = req.query("interval").unwrap_or("PT1M");
    let grain = GRAINS
        .iter()
        .find(|(g, _)| g.eq_ignore_ascii_case(interval))
        .map(|(_, s)| *s)
        .ok_or_else(|| bad(format!("The interval '{interval}' is not supported; use one of {GRAINS:?}.")))?;
    if (end - start) / grain > MAX_POINTS {
        return Err(bad(format!("The timespan holds more than {MAX_POINTS} points of {interval}.")));
    }
    let names: Vec<&str> = match req.query("metricnames").filter(|n| !n.is_empty()) {
        Some(n) => n.split(',').map(str::trim).collect(),
        None => METRICS.iter().map(|m| m.0).collect(),
    };
    let aggregations: Vec<String> =
        req.query("aggregation").unwrap_or("Total").split(',').map(|a| a.trim().to_ascii_lowercase()).collect();
    if let Some(a) =
        aggregations.iter().find(|a| !["total", "average", "minimum", "maximum", "count"].contains(&a.as_str()))
    {
        return Err(bad(format!("The aggregation '{a}' is not supported.")));
    }
    let split = parse_filter(req.query("$filter"))?;
    let mut value = Vec::new();
    let mut budget = MAX_TOTAL_POINTS;
    for name in names {
        let (name, display, direction, bytes) = *METRICS.iter().find(|m| m.0.eq_ignore_ascii_case(name)).ok_or_else(|| {
            bad(format!(
                "Failed to find metric configuration for provider: Microsoft.Network, resource Type: virtualNetworks, \
                 metric: {name}, Valid metrics: {}",
                METRICS.iter().map(|m| m.0).collect::<Vec<_>>().join(",")
            ))
        })?;
        let timeseries: Vec<Value> = series(
            &core.meterbook,
            &vnet.id,
            (direction, bytes),
            (start, end, grain),
            &split,
            (&aggregations, &mut budget),
        )?
        .into_iter()
        .map(|(remote, data)| {
            let meta: Vec<Value> =
                remote.map(|r| json!({"name": localized(DIMENSION, DIMENSION), "value": r})).into_iter().collect();
            json!({"metadatavalues": meta, "data": data})
        })
        .collect();
        value.push(json!({
            "id": format!("{}/providers/Microsoft.Insights/metrics/{name}", vnet.id),
            "type": "Microsoft.Insights/metrics", "name": localized(name, display), "displayDescription": display,
            "unit": if bytes { "Bytes" } else { "Count" }, "timeseries": timeseries, "errorCode": "Success",
        }));
    }
    let body = json!({
        "cost": 0, "timespan": format!("{}/{}", timestamp(start), timestamp(end)), "interval": GRAINS.iter().find(|g| g.1 == grain).map_or(interval, |g| g.0),
        "namespace": "Microsoft.Network/virtualNetworks", "resourceregion": vnet.location, "value": value,
    });
    Ok(json_value(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_as_clients_send_them() {
        let now = parse_time("2026-12-05T12:00:00Z").expect("time");
        // az: utcnow().isoformat(), quote_plus'd and encoded again by its HTTP layer.
        let (a, b) = parse_timespan("2026-12-05T10%3A00%3A00.123456%2F2026-12-05T11%3A00%3A00.5", now).expect("az");
        assert_eq!((timestamp(a), timestamp(b)), ("2026-12-05T10:00:00Z".into(), "2026-12-05T11:00:00Z".into()));
        let (_, b) = parse_timespan("2026-12-05T10:00:00Z/2026-12-06T10:00:00+00:00", now).expect("plain");
        assert_eq!(b, now, "a timespan ends no later than now");
        assert!(parse_timespan("2026-12-05T10:00:00Z", now).is_err());
        assert!(parse_timespan("2026-12-05T11:00:00Z/2026-12-05T10:00:00Z", now).is_err());
    }
}

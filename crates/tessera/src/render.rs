//! Readable tables for the diagnostics (the JSON bodies are printed as they are with `-o json`).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Value, json};
use tessera_engine::Engine;
use tessera_engine::diag::cost::CostReport;
use tessera_engine::diag::matrix::Matrix;
use tessera_model::network::PeeringState;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect::<Vec<_>>().join(", ")
        }
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn items(body: &Value) -> &[Value] {
    body.get("value").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Effective routes.
pub(crate) fn routes(body: &Value) {
    let mut t = table(&["Source", "State", "Address prefix", "Next hop type", "Next hop IP", "Name"]);
    for r in items(body) {
        t.add_row(vec![
            s(r, "source"),
            s(r, "state"),
            s(r, "addressPrefix"),
            s(r, "nextHopType"),
            s(r, "nextHopIpAddress"),
            s(r, "name"),
        ]);
    }
    crate::emit!("{t}");
}

/// Effective security rules, one table per NSG.
pub(crate) fn rules(body: &Value) {
    if items(body).is_empty() {
        crate::emit!("No network security group applies: all traffic is allowed.");
    }
    for g in items(body) {
        let nsg = g.pointer("/networkSecurityGroup/id").and_then(Value::as_str).unwrap_or_default();
        let assoc =
            g.get("association").and_then(Value::as_object).and_then(|o| o.keys().next().cloned()).unwrap_or_default();
        crate::emit!("{nsg} (associated with the {assoc})");
        let mut t = table(&[
            "Name",
            "Priority",
            "Direction",
            "Access",
            "Protocol",
            "Source",
            "Source ports",
            "Destination",
            "Destination ports",
        ]);
        for r in g.get("effectiveSecurityRules").and_then(Value::as_array).into_iter().flatten() {
            let side = |one: &str, many: &str| {
                let single = s(r, one);
                if single.is_empty() { s(r, many) } else { single }
            };
            t.add_row(vec![
                s(r, "name"),
                s(r, "priority"),
                s(r, "direction"),
                s(r, "access"),
                s(r, "protocol"),
                side("sourceAddressPrefix", "sourceAddressPrefixes"),
                s(r, "sourcePortRanges"),
                side("destinationAddressPrefix", "destinationAddressPrefixes"),
                s(r, "destinationPortRanges"),
            ]);
        }
        crate::emit!("{t}");
    }
}

/// A flat object as two columns.
pub(crate) fn key_values(body: &Value) {
    let mut t = table(&["Field", "Value"]);
    if let Some(o) = body.as_object() {
        for (k, _) in o {
            t.add_row(vec![k.clone(), s(body, k)]);
        }
    }
    crate::emit!("{t}");
}

/// A connectivity check: status, then hops with their issues.
pub(crate) fn connectivity(body: &Value) {
    crate::emit!("Connection status: {}", s(body, "connectionStatus"));
    let sent = body.get("probesSent").and_then(Value::as_u64).unwrap_or(0);
    if sent > 0 {
        let failed = body.get("probesFailed").and_then(Value::as_u64).unwrap_or(0);
        let ms = |k: &str| body.get(k).and_then(Value::as_u64).map_or_else(|| "-".to_string(), |v| v.to_string());
        crate::emit!(
            "Live probes: {} of {sent} answered, latency avg {} min {} max {} ms; the programs say {}",
            sent - failed,
            ms("avgLatencyInMs"),
            ms("minLatencyInMs"),
            ms("maxLatencyInMs"),
            s(body, "logicalConnectionStatus")
        );
    }
    let mut t = table(&["#", "Type", "Address", "Resource", "Issues"]);
    for (i, h) in body.get("hops").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let issues: Vec<String> = h
            .get("issues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|is| {
                let ctx: Vec<String> = is
                    .get("context")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| format!("{}={}", s(c, "key"), short(&s(c, "value"))))
                    .collect();
                format!("{} {} ({})", s(is, "origin"), s(is, "type"), ctx.join(", "))
            })
            .collect();
        t.add_row(vec![
            (i + 1).to_string(),
            s(h, "type"),
            s(h, "address"),
            short(&s(h, "resourceId")),
            issues.join("\n"),
        ]);
    }
    crate::emit!("{t}");
}

fn short(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 8 { parts[8..].join("/") } else { id.to_string() }
}

/// The reachability matrix as a grid, then the reasons.
pub(crate) fn matrix(m: &Matrix) {
    crate::emit!("{} port {}: row = from, column = to", m.protocol, m.port);
    let mut header = vec![""];
    header.extend(m.vms.iter().map(String::as_str));
    let mut t = table(&header);
    for from in &m.vms {
        let mut row = vec![from.clone()];
        for to in &m.vms {
            let cell = m.cells.iter().find(|c| c.from == *from && c.to == *to);
            row.push(match cell {
                None => "-".into(),
                Some(c) if c.reachable => "yes".into(),
                Some(_) => "no".into(),
            });
        }
        t.add_row(row);
    }
    crate::emit!("{t}");
    for c in m.cells.iter().filter(|c| !c.reachable) {
        crate::emit!("{} -> {}: {}", c.from, c.to, c.reason.clone().unwrap_or_default());
    }
}

/// A summary of a valid topology.
pub(crate) fn cost(r: &CostReport) {
    let money = |v: f64| format!("{v:.2} {}", r.currency);
    let mut t = table(&["from", "to", "GB/month", "path", "crossings", "cost", "direct peering"]);
    for f in &r.flows {
        let path = if f.reachable { f.path.join(" > ") } else { format!("{} (unreachable)", f.path.join(" > ")) };
        let direct = f.direct_peering_cost.map_or_else(|| "-".to_string(), money);
        t.add_row(vec![
            f.from.clone(),
            f.to.clone(),
            format!("{}", f.gb_per_month),
            path,
            f.peering_crossings.to_string(),
            money(f.cost),
            direct,
        ]);
    }
    crate::emit!("{t}");
    let mut m = table(&["meter", "GB/month", "cost"]);
    for meter in &r.meters {
        m.add_row(vec![meter.meter.clone(), format!("{:.1}", meter.gb), money(meter.cost)]);
    }
    crate::emit!("{m}");
    crate::emit!("total {} a month; on direct peerings {}", money(r.total), money(r.direct_peering_total));
}

pub(crate) fn summary(engine: &Engine) -> Value {
    let st = engine.state();
    let links: Vec<Value> = st
        .vnets
        .values()
        .flat_map(|v| v.properties.virtual_network_peerings.iter().map(move |p| (v, p)))
        .map(|(v, p)| {
            json!({
                "vnet": v.name,
                "peering": p.name,
                "remote": p.properties.remote_virtual_network.as_ref().map(|r| r.id.name().to_string()),
                "peeringState": p.properties.peering_state,
                "peeringSyncLevel": p.properties.peering_sync_level,
            })
        })
        .collect();
    json!({
        "valid": true,
        "virtualNetworks": st.vnets.len() + st.classic_vnets.len(),
        "subnets": st.vnets.values().map(|v| v.properties.subnets.len()).sum::<usize>(),
        "networkInterfaces": st.nics.len(),
        "virtualMachines": st.vms.len(),
        "networkSecurityGroups": st.nsgs.len(),
        "routeTables": st.route_tables.len(),
        "gateways": st.gateways.len(),
        "loadBalancers": st.load_balancers.len(),
        "peerings": links,
        "connected": st.vnets.values().flat_map(|v| v.properties.virtual_network_peerings.iter())
            .filter(|p| p.properties.peering_state == Some(PeeringState::Connected)).count(),
    })
}

/// Prints a summary.
pub(crate) fn print_summary(v: &Value) {
    crate::emit!(
        "valid: {} virtual networks, {} subnets, {} VMs, {} NSGs, {} route tables, {} gateways, {} load balancers",
        s(v, "virtualNetworks"),
        s(v, "subnets"),
        s(v, "virtualMachines"),
        s(v, "networkSecurityGroups"),
        s(v, "routeTables"),
        s(v, "gateways"),
        s(v, "loadBalancers")
    );
    let mut t = table(&["VNet", "Peering", "Remote", "State", "Sync level"]);
    for p in v.get("peerings").and_then(Value::as_array).into_iter().flatten() {
        t.add_row(vec![s(p, "vnet"), s(p, "peering"), s(p, "remote"), s(p, "peeringState"), s(p, "peeringSyncLevel")]);
    }
    crate::emit!("{t}");
}

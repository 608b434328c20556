//! Network Watcher `topology`: the network resources of a resource group and how they relate
//! (a VNet contains its subnets; a NIC is associated with its subnet, its VM, its NSG and its
//! public IP; a subnet with its NSG and route table), in Azure's `Topology` shape.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tessera_model::{ArmError, ArmResult, ResourceId};

use crate::Engine;

/// `TopologyParameters`: the resource group to draw.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyParameters {
    /// The resource group.
    #[serde(default)]
    pub target_resource_group_name: Option<String>,
}

/// An association: the other resource's name and id, and `Contains` or `Associated`.
type Link = (String, String, &'static str);

/// A resource drawn: name, id, location, associations.
type Node = (String, String, String, Vec<Link>);

/// The topology of `group` in `subscription`; `when` is the time to stamp it with (an input).
pub fn topology(engine: &Engine, subscription: &str, p: &TopologyParameters, when: &str) -> ArmResult<Value> {
    let rg =
        p.target_resource_group_name.as_deref().filter(|g| !g.trim().is_empty()).ok_or_else(|| {
            ArmError::bad_request("InvalidTopologyParameters", "targetResourceGroupName is required.")
        })?;
    let st = engine.state();
    let here = |id: &ResourceId| {
        id.subscription().eq_ignore_ascii_case(subscription) && id.resource_group().eq_ignore_ascii_case(rg)
    };
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut add = |id: &ResourceId, location: &str, links: Vec<Link>| {
        nodes.insert(id.key().to_string(), (id.name().to_string(), id.to_string(), location.to_string(), links));
    };
    let link = |id: &ResourceId, kind: &'static str| (id.name().to_string(), id.to_string(), kind);
    for v in st.vnets.values().filter(|v| here(&v.id)) {
        let subnets: Vec<ResourceId> = v.properties.subnets.iter().map(|s| v.id.child("subnets", &s.name)).collect();
        add(&v.id, &v.location, subnets.iter().map(|s| link(s, "Contains")).collect());
        for s in &v.properties.subnets {
            let sid = v.id.child("subnets", &s.name);
            let mut links = Vec::new();
            links.extend(s.properties.network_security_group.as_ref().map(|n| link(&n.id, "Associated")));
            links.extend(s.properties.route_table.as_ref().map(|t| link(&t.id, "Associated")));
            add(&sid, &v.location, links);
        }
    }
    for n in st.nics.values().filter(|n| here(&n.id)) {
        let mut links = Vec::new();
        links.extend(n.properties.virtual_machine.as_ref().map(|v| link(&v.id, "Associated")));
        links.extend(n.properties.network_security_group.as_ref().map(|g| link(&g.id, "Associated")));
        for c in &n.properties.ip_configurations {
            links.extend(c.properties.subnet.as_ref().map(|s| link(&s.id, "Associated")));
            links.extend(c.properties.public_ip_address.as_ref().map(|p| link(&p.id, "Associated")));
        }
        add(&n.id, &n.location, links);
    }
    for v in st.vms.values().filter(|v| here(&v.id)) {
        let links = v.properties.network_profile.network_interfaces.iter().map(|n| link(&n.id, "Contains")).collect();
        add(&v.id, &v.location, links);
    }
    for g in st.nsgs.values().filter(|g| here(&g.id)) {
        add(&g.id, &g.location, Vec::new());
    }
    for t in st.route_tables.values().filter(|t| here(&t.id)) {
        add(&t.id, &t.location, Vec::new());
    }
    for p in st.public_ips.values().filter(|p| here(&p.resource.id)) {
        add(&p.resource.id, &p.resource.location, Vec::new());
    }
    let resources: Vec<Value> = nodes
        .into_values()
        .map(|(name, id, location, links)| {
            let associations: Vec<Value> = links
                .into_iter()
                .map(|(name, id, kind)| json!({"name": name, "resourceId": id, "associationType": kind}))
                .collect();
            json!({"name": name, "id": id, "location": location, "associations": associations})
        })
        .collect();
    Ok(json!({
        "id": format!("/subscriptions/{subscription}/resourceGroups/{rg}"),
        "createdDateTime": when,
        "lastModified": when,
        "resources": resources,
    }))
}

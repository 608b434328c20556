//! Loading a topology file (YAML or ARM JSON) into an engine, in dependency order, with every
//! resource validated as if it had been sent to the API.

use std::collections::BTreeSet;

use tessera_model::account::{DEFAULT_TENANT, Subscription};
use tessera_model::{ArmError, Resource};

use crate::{Change, Engine, Limits};

/// A topology file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The concise YAML format.
    Yaml,
    /// ARM JSON: an array of resources or `{"resources": [...]}`.
    Json,
}

impl Format {
    /// Guesses the format from a file name and its first character.
    pub fn detect(name: &str, text: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") || text.trim_start().starts_with(['[', '{']) { Format::Json } else { Format::Yaml }
    }
}

/// Parses a topology into resources.
pub fn parse(text: &str, format: Format) -> Result<Vec<Resource>, ArmError> {
    match format {
        Format::Yaml => tessera_model::yaml::from_yaml(text),
        Format::Json => tessera_model::resource::from_arm_document(text),
    }
}

/// Builds an engine from resources. Subscriptions that are referenced but not declared are
/// added in the default tenant. Fails on the first refusal, naming the resource.
pub fn build(mut resources: Vec<Resource>, limits: Limits) -> Result<Engine, ArmError> {
    let declared: BTreeSet<String> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Subscription(s) => Some(s.subscription_id.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let used: BTreeSet<String> =
        resources.iter().filter_map(|r| r.id()).map(|id| id.subscription().to_ascii_lowercase()).collect();
    for s in used.difference(&declared) {
        resources.push(Resource::Subscription(Subscription::new(s, DEFAULT_TENANT, s)));
    }
    resources.sort_by_key(Resource::apply_rank);
    let mut engine = Engine::new(limits);
    for r in resources {
        let what = r.id().map(ToString::to_string).unwrap_or_default();
        engine.apply_deferred(Change::Put(r)).map_err(|mut e| {
            if !what.is_empty() && e.target.is_none() {
                e.target = Some(what);
            }
            e
        })?;
    }
    engine.compile_all();
    Ok(engine)
}

/// Rebuilds an engine from documents a store kept (as [`export`] writes them), then puts back
/// what only history explains: Disconnected links and the remote space each link last synced
/// (S2–S4). `sequence` is the stored [`Engine::sequence`].
pub fn restore(resources: Vec<Resource>, sequence: u64, limits: Limits) -> Result<Engine, ArmError> {
    let links: Vec<tessera_model::network::Peering> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Peering(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let mut engine = build(resources, limits)?;
    engine.restore_links(&links, sequence);
    Ok(engine)
}

/// Parses and builds in one step.
pub fn load(text: &str, format: Format, limits: Limits) -> Result<Engine, ArmError> {
    build(parse(text, format)?, limits)
}

/// The whole state as an ARM JSON document `{"resources": [...]}`, each resource as `GET`
/// returns it (VNets embed their subnets and peering links). Loading it gives the same model.
pub fn export(engine: &Engine) -> serde_json::Value {
    use serde_json::to_value;
    let st = engine.state();
    let mut out: Vec<serde_json::Value> = Vec::new();
    out.extend(st.subscriptions.values().filter_map(|s| to_value(s).ok()));
    out.extend(st.nsgs.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.route_tables.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.local_gateways.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.vnets.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.classic_vnets.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.gateways.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.load_balancers.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.nics.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.vms.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.connections.values().filter_map(|r| to_value(r).ok()));
    serde_json::json!({ "resources": out })
}

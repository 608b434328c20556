//! Loading topology files (`load::load`).

use std::path::Path;

use crate::fixture::*;

// ---------------------------------------------------------------------------------------------
// Loading topology files (load::load)
// ---------------------------------------------------------------------------------------------

#[test]
fn load_refuses_malformed_json() {
    assert_load_refused("{ not json", Format::Json, Limits::default(), "InvalidRequestFormat", 400);
}

#[test]
fn load_refuses_json_of_the_wrong_shape() {
    let code = "InvalidRequestContent";
    assert_load_refused("42", Format::Json, Limits::default(), code, 400);
    assert_load_refused(r#"[{"id": "not-an-id"}]"#, Format::Json, Limits::default(), code, 400);
    let no_properties = r#"[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
                            "location": "westeurope"}]"#;
    assert_load_refused(no_properties, Format::Json, Limits::default(), code, 400);
}

#[test]
fn load_refuses_unsupported_resource_types() {
    let watcher = r#"[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkWatchers/nw",
                       "location": "westeurope", "properties": {}}]"#;
    assert_load_refused(watcher, Format::Json, Limits::default(), "NoRegisteredProviderFound", 400);
}

#[test]
fn load_refuses_invalid_yaml_topologies() {
    let code = "InvalidTopology";
    // Not YAML of the expected shape, an unknown field, an undeclared name, an ambiguous name.
    assert_load_refused("vnets: 12", Format::Yaml, Limits::default(), code, 400);
    assert_load_refused(
        "vnets: [{ name: a, addressSpace: [10.0.0.0/16], colour: red }]",
        Format::Yaml,
        Limits::default(),
        code,
        400,
    );
    let undeclared =
        "vnets: [{ name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24, nsg: ghost }] }]";
    assert_load_refused(undeclared, Format::Yaml, Limits::default(), code, 400);
    let ambiguous = "vnets:\n  - { name: a, addressSpace: [10.0.0.0/16] }\n  - { name: a, resourceGroup: other, addressSpace: [10.1.0.0/16] }\npeerings: [{ from: a, to: a }]\n";
    assert_load_refused(ambiguous, Format::Yaml, Limits::default(), code, 400);
}

#[test]
fn load_reports_engine_refusals_with_their_target() {
    // R1 in a file (examples/invalid-overlap.yaml): the refusal names the link.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/invalid-overlap.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let err = assert_load_refused(&text, Format::Yaml, Limits::default(), "VnetAddressSpacesOverlap", 400);
    assert!(err.target.as_deref().is_some_and(|t| t.contains("/virtualNetworkPeerings/")), "{err:?}");
    // A refusal without a target of its own gets the resource's id.
    let overlap = "vnets: [{ name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24 }, { name: t, prefix: 10.0.0.0/25 }] }]";
    let err = assert_load_refused(overlap, Format::Yaml, Limits::default(), "NetcfgSubnetRangesOverlap", 400);
    assert!(err.target.as_deref().is_some_and(|t| t.ends_with("/virtualNetworks/a")), "{err:?}");
    // Limits apply while loading too.
    let two = "vnets: [{ name: a, addressSpace: [10.0.0.0/16] }, { name: b, addressSpace: [10.1.0.0/16] }]";
    let limits = Limits { vnets_per_subscription: 1, ..Limits::default() };
    assert_load_refused(two, Format::Yaml, limits, "VnetCountLimitReached", 400);
}

//! The port index of compiled NSGs (a lookup checks only the rules covering the destination
//! port) answers exactly what a scan of every rule in priority order answers (N2, N3).

use std::net::IpAddr;

use proptest::prelude::*;
use serde_json::json;
use tessera_engine::compile::security::{CompiledNsg, Protocol, TagContext};
use tessera_model::security::{Direction, NetworkSecurityGroup};

/// (inbound, allow, protocol, destination port ranges, source).
type Rule = (bool, bool, &'static str, Vec<String>, String);

fn rule() -> impl Strategy<Value = Rule> {
    let ports = prop_oneof![
        Just("*".to_string()),
        (0u16..70).prop_map(|p| p.to_string()),
        (0u16..70, 0u16..40).prop_map(|(a, w)| format!("{a}-{}", a.saturating_add(w))),
        Just("65535".to_string()),
    ];
    let proto = prop_oneof![Just("Tcp"), Just("Udp"), Just("Icmp"), Just("*")];
    let addr = prop_oneof![Just("*".to_string()), (0u8..4).prop_map(|i| format!("10.{i}.0.0/16"))];
    (any::<bool>(), any::<bool>(), proto, prop::collection::vec(ports, 1..3), addr)
}

fn nsg(rules: Vec<Rule>) -> NetworkSecurityGroup {
    let rules: Vec<_> = rules
        .into_iter()
        .enumerate()
        .map(|(i, (inbound, allow, proto, ports, src))| {
            json!({"name": format!("r{i}"), "properties": {
                "priority": 100 + i, "direction": if inbound { "Inbound" } else { "Outbound" },
                "access": if allow { "Allow" } else { "Deny" }, "protocol": proto,
                "sourceAddressPrefix": src, "destinationAddressPrefix": "*",
                "sourcePortRange": "*", "destinationPortRanges": ports}})
        })
        .collect();
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n";
    let mut nsg: NetworkSecurityGroup = serde_json::from_value(json!({"id": id, "location": "westeurope",
        "properties": {"securityRules": rules}}))
    .expect("an NSG");
    nsg.properties.default_security_rules = tessera_model::security::default_rules(&nsg.id);
    nsg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_port_index_agrees_with_a_scan(
        rules in prop::collection::vec(rule(), 0..24),
        flows in prop::collection::vec((any::<bool>(), 0usize..3, 0u8..4, 0u16..80, any::<bool>()), 1..40),
    ) {
        let compiled = CompiledNsg::new(&nsg(rules), &TagContext::default(), &|_| Vec::new());
        prop_assert!(compiled.inbound_by_port.is_some() && compiled.outbound_by_port.is_some());
        for (inbound, p, net, port, max) in flows {
            let proto = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp][p];
            let dport = if max { 65535 } else { port };
            let src: IpAddr = [10, net, 0, 4].into();
            let dst: IpAddr = [10, 9, 0, 4].into();
            let direction = if inbound { Direction::Inbound } else { Direction::Outbound };
            let rules = if inbound { &compiled.inbound } else { &compiled.outbound };
            let scan = rules.iter().find(|r| r.matches(proto, src, 1234, dst, dport)).map(|r| r.name.clone());
            let indexed = compiled.evaluate(direction, proto, src, 1234, dst, dport).map(|r| r.name.clone());
            prop_assert_eq!(indexed, scan);
        }
    }
}

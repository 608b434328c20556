//! Coverage: every error code in the sources is demonstrated by a test in this directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Coverage: every code in the sources is demonstrated above
// ---------------------------------------------------------------------------------------------

/// Every code this file demonstrates (each is asserted by at least one test above).
const COVERED: &[&str] = &[
    "ResourceMoveProviderValidationFailed",
    "CannotMoveVirtualNetworkWithPeerings",
    "CannotMoveVirtualNetworkInUse",
    "ResourceAlreadyExists",
    // ops/mod.rs
    "InvalidSubscriptionId",
    "UnsupportedResourceType",
    // ops/common.rs and model error/location/prefix helpers
    "InvalidResourceName",
    "SubscriptionNotFound",
    "InvalidResourceReference",
    "LocationNotAvailableForResourceType",
    "InvalidCIDRNotation",
    "GatewayReportTooLarge",
    // metering.rs (usage.rs)
    "InvalidUsageReport",
    "UsageReportTooLarge",
    "UsageCounterWentBack",
    "InvalidSharedKey",
    "InvalidAddressPrefixFormat",
    "NotFound",
    "ResourceNotFound",
    // ops/vnet.rs
    "LocationCannotBeChanged",
    "VnetCountLimitReached",
    "AddressSpaceRequired",
    "VnetAddressSpacePrefixesOverlap",
    "DnsServersLimitReached",
    "InvalidDnsServerAddress",
    "InvalidFlowTimeoutInMinutes",
    "UnsupportedReference",
    "StandardSkuPublicIPAddressesMustBeStatic",
    "CannotSpecifyPublicIpAllocationMethodAsStaticForIpV6PublicIp",
    "PublicIPIdleTimeoutIsOutOfRange",
    "PublicIPAddressSkuCannotBeChanged",
    "PublicIPAddressVersionCannotBeChanged",
    "PublicIPAddressPoolExhausted",
    "PublicIPAddressInUse",
    "PublicIPAddressCannotBeDeleted",
    "PublicLoadBalancerNotSupported",
    "LoadBalancerSkuNotSupported",
    "PrivateIPAddressPrefixNotSupported",
    "ApplicationSecurityGroupInUse",
    "PublicIPCountLimitReached",
    "ApplicationSecurityGroupCountLimitReached",
    "ApplicationSecurityGroupMembersInDifferentVnets",
    "SubnetCountLimitReached",
    "NetcfgInvalidSubnet",
    "DuplicateResourceName",
    "NetcfgSubnetRangeOutsideVnet",
    "NetcfgSubnetRangesOverlap",
    "GatewaySubnetRouteTableCannotDisableBgpPropagation",
    "GatewaySubnetRouteTableCannotHaveDefaultRoute",
    "InUseSubnetCannotBeDeleted",
    "InUseSubnetCannotBeUpdated",
    "VnetAddressSpacesOverlap",
    // ops/peering.rs
    "InvalidRequestContent",
    "ChangingRemoteVirtualNetworkNotAllowed",
    "ChangingPeerCompleteVnetsNotAllowed",
    "PeeringsPerVirtualNetworkLimitReached",
    "CannotPeerVirtualNetworkWithItself",
    "InvalidGlobalResourceReference",
    "GlobalPeeringAcrossCloudsNotSupported",
    "AnotherPeeringAlreadyReferencesRemoteVnet",
    "RemotePeeringIsDisconnected",
    "PeeringIsDisconnected",
    "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
    "OnlyOnePeeringCanUseRemoteGateways",
    "VnetWithGatewayCannotUseRemoteGateways",
    "RemoteVnetHasNoGateways",
    "RemoteGatewaySkuDoesNotSupportGatewayTransit",
    "SubnetPeeringNotSupportedForClassicVnet",
    "SubnetNamesRequiredForSubnetPeering",
    "SubnetPeeringSubnetLimitReached",
    "DuplicateSubnetInSubnetPeering",
    "SubnetNotFoundForSubnetPeering",
    "PrivateIpsPerPeeringGroupLimitReached",
    // ops/nic.rs and ops/address.rs
    "NetworkInterfaceMustHaveIpConfiguration",
    "NetworkInterfaceMustHaveOnePrimaryIpConfiguration",
    "SubnetRequired",
    "IpConfigurationsOfNicMustBeInSameVnet",
    "InvalidPrivateIPAddress",
    "PrivateIPAddressRequired",
    "PrivateIPAddressIsAllocated",
    "PrivateIPAddressNotInSubnet",
    "PrivateIPAddressInReservedRange",
    "SubnetIsFull",
    "PrivateIpsPerVnetLimitReached",
    "NicInUse",
    "NetworkProfileRequired",
    "VirtualMachineMustHaveOnePrimaryNic",
    "NetworkInterfacesInDifferentVirtualNetworks",
    // ops/gateway.rs
    "InvalidGatewayType",
    "PolicyBasedVpnGatewayRequiresBasicSku",
    "InvalidGatewayIpConfigurations",
    "GatewaySubnetRequired",
    "GatewayCountLimitReached",
    "VnetUsingRemoteGatewaysCannotHaveGateway",
    "InUseVirtualNetworkGatewayCannotBeDeleted",
    "InUseLocalNetworkGatewayCannotBeDeleted",
    "InvalidConnectionConfiguration",
    "Vnet2VnetAddressSpacesOverlap",
    // ops/lb.rs
    "LoadBalancerFrontendRequired",
    "InUseLoadBalancerCannotBeDeleted",
    // ops/nsg.rs
    "NetworkSecurityGroupCountLimitReached",
    "SecurityRuleCountLimitReached",
    "SecurityRuleInvalidPriority",
    "SecurityRuleDescriptionTooLong",
    "SecurityRuleConflict",
    "SecurityRuleParameterContainsUnsupportedValue",
    "SecurityRuleInvalidPortRange",
    "SecurityRuleInvalidAddressPrefix",
    "SecurityRuleAddressPrefixCountLimitReached",
    "InUseNetworkSecurityGroupCannotBeDeleted",
    "RouteTableCountLimitReached",
    "RouteCountLimitReached",
    "ServiceTagRoutesNotSupported",
    "RouteConflict",
    "InvalidNextHopIpAddress",
    "NextHopIpAddressNotAllowed",
    "InUseRouteTableCannotBeDeleted",
    // tessera-model: resource.rs (ARM JSON) and yaml.rs
    "InvalidRequestFormat",
    "NoRegisteredProviderFound",
    "InvalidTopology",
];

/// Codes found in the scanned sources that no `Engine::apply` or `load::load` call can
/// produce, each with the reason. Empty: every scanned code is reachable.
const EXCLUDED: &[(&str, &str)] = &[];

/// Source trees scanned, relative to this crate, with the sub-trees left out and why.
const SCANNED: &[(&str, &[(&str, &str)])] = &[
    (
        "src",
        &[(
            "src/diag",
            "diagnostics (nextHop, ipFlowVerify, effective routes, resolve): read-only queries, \
             not reachable through Engine::apply or load::load",
        )],
    ),
    ("../tessera-model/src", &[]),
];

/// Calls whose first argument (after an HTTP status for `with_status`) is an ARM error code.
const CALLS: &[&str] = &["bad_request(", "with_status(", "limit(", "rule_error(", "refused(", "check_region_quota("];

/// Call sites that forward a code they received as a parameter: the helpers in [`CALLS`]
/// (`ArmError::bad_request` → `with_status`, `common::limit` and `nsg::rule_error` →
/// `bad_request`). A new forwarding helper must be added to [`CALLS`] and here.
const FORWARDERS: &[&str] = &[
    "tessera-model/src/error.rs: with_status(400, code",
    "tessera-engine/src/ops/common.rs: bad_request(code",
    "tessera-engine/src/ops/nsg.rs: bad_request(code",
    "tessera-engine/src/ops/common.rs: limit(code",
    "tessera-engine/src/ops/vnet.rs: bad_request(code",
];

fn rust_files(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).collect();
    paths.sort();
    for p in paths {
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, skip, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `<crate>/src/...` for messages (paths are canonical, see the coverage test).
fn short(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let cut = text.rfind("/crates/").map_or(0, |i| i + "/crates/".len());
    text[cut..].to_string()
}

/// Scans one file: codes (with the files they come from) and forwarding call sites.
fn scan(file: &str, text: &str, codes: &mut BTreeMap<String, BTreeSet<String>>, forwarders: &mut Vec<String>) {
    for call in CALLS {
        for (at, _) in text.match_indices(call) {
            let before = &text[..at];
            // A longer identifier (`my_limit(`) or the definition itself (`fn limit(`).
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') || before.ends_with("fn ") {
                continue;
            }
            let mut rest = text[at + call.len()..].trim_start();
            let mut head = String::new();
            if *call == "with_status(" {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    forwarders.push(format!("{file}: {call}<status>"));
                    continue;
                }
                head = format!("{digits}, ");
                rest = rest[digits.len()..].trim_start().trim_start_matches(',').trim_start();
            }
            match rest.strip_prefix('"') {
                Some(lit) => {
                    let code = &lit[..lit.find('"').expect("closed string literal")];
                    codes.entry(code.to_string()).or_default().insert(file.to_string());
                }
                None => {
                    let arg: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    forwarders.push(format!("{file}: {call}{head}{arg}"));
                }
            }
        }
    }
}

#[test]
fn every_error_code_in_the_sources_is_covered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut files = Vec::new();
    for (dir, skip) in SCANNED {
        let skip: Vec<PathBuf> = skip.iter().map(|(s, _)| canonical(root.join(s))).collect();
        rust_files(&canonical(root.join(dir)), &skip, &mut files);
    }
    let mut codes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut forwarders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        scan(&short(f), &text, &mut codes, &mut forwarders);
    }
    assert!(codes.len() > 50, "the scan found only {} codes; is it still reading the sources?", codes.len());

    // The scanner knows every helper that forwards a code.
    let expected: BTreeSet<&str> = FORWARDERS.iter().copied().collect();
    let found: BTreeSet<&str> = forwarders.iter().map(String::as_str).collect();
    assert_eq!(found, expected, "call sites that forward a non-literal code changed; teach CALLS/FORWARDERS");

    let covered: BTreeSet<&str> = COVERED.iter().copied().collect();
    let excluded: BTreeSet<&str> = EXCLUDED.iter().map(|(c, _)| *c).collect();
    let missing: Vec<String> = codes
        .iter()
        .filter(|(c, _)| !covered.contains(c.as_str()) && !excluded.contains(c.as_str()))
        .map(|(c, f)| format!("{c} (in {})", f.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(missing.is_empty(), "error codes without a refusal test in tests/refusals/:\n  {}", missing.join("\n  "));

    // No stale entries: every listed code still exists, and is asserted by a test here.
    let stale: Vec<&str> = covered.iter().chain(&excluded).copied().filter(|c| !codes.contains_key(*c)).collect();
    assert!(stale.is_empty(), "COVERED/EXCLUDED name codes the sources no longer produce: {stale:?}");
    let mut me = String::new();
    for entry in std::fs::read_dir(root.join("tests/refusals")).expect("tests/refusals") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n != "coverage.rs") {
            me.push_str(&std::fs::read_to_string(&path).expect("read a refusal test file"));
        }
    }
    let unused: Vec<&str> = COVERED.iter().copied().filter(|c| me.matches(&format!("\"{c}\"")).count() < 1).collect();
    assert!(unused.is_empty(), "COVERED lists codes no test asserts: {unused:?}");
}

//! Azure regions: their cloud (global peering never crosses clouds, R4) and their billing zone
//! for peering traffic ($3, $4).

use serde::{Deserialize, Serialize};

use crate::error::ArmError;

/// A sovereign cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cloud {
    /// Public Azure.
    AzureCloud,
    /// Azure China (21Vianet).
    AzureChinaCloud,
    /// Azure US Government.
    AzureUSGovernment,
}

/// Billing zone for data transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BillingZone {
    /// North America, Europe (and Australia Central).
    Zone1,
    /// Asia Pacific, Japan, Australia, India, Korea.
    Zone2,
    /// Brazil, South Africa, Middle East.
    Zone3,
    /// US Government.
    UsGov,
    /// Azure China.
    China,
}

/// A region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// ARM name, e.g. `westeurope`.
    pub name: &'static str,
    /// Display name, e.g. `West Europe`.
    pub display_name: &'static str,
    /// Cloud.
    pub cloud: Cloud,
    /// Billing zone.
    pub zone: BillingZone,
}

use BillingZone::*;
use Cloud::*;

const fn loc(name: &'static str, display_name: &'static str, cloud: Cloud, zone: BillingZone) -> Location {
    Location { name, display_name, cloud, zone }
}

/// The regions Tessera knows.
pub const LOCATIONS: &[Location] = &[
    loc("eastus", "East US", AzureCloud, Zone1),
    loc("eastus2", "East US 2", AzureCloud, Zone1),
    // The early-access (canary) regions ARM's own examples use.
    loc("eastus2euap", "East US 2 EUAP", AzureCloud, Zone1),
    loc("centraluseuap", "Central US EUAP", AzureCloud, Zone1),
    loc("centralus", "Central US", AzureCloud, Zone1),
    loc("northcentralus", "North Central US", AzureCloud, Zone1),
    loc("southcentralus", "South Central US", AzureCloud, Zone1),
    loc("westcentralus", "West Central US", AzureCloud, Zone1),
    loc("westus", "West US", AzureCloud, Zone1),
    loc("westus2", "West US 2", AzureCloud, Zone1),
    loc("westus3", "West US 3", AzureCloud, Zone1),
    loc("canadacentral", "Canada Central", AzureCloud, Zone1),
    loc("canadaeast", "Canada East", AzureCloud, Zone1),
    loc("northeurope", "North Europe", AzureCloud, Zone1),
    loc("westeurope", "West Europe", AzureCloud, Zone1),
    loc("uksouth", "UK South", AzureCloud, Zone1),
    loc("ukwest", "UK West", AzureCloud, Zone1),
    loc("francecentral", "France Central", AzureCloud, Zone1),
    loc("francesouth", "France South", AzureCloud, Zone1),
    loc("germanywestcentral", "Germany West Central", AzureCloud, Zone1),
    loc("germanynorth", "Germany North", AzureCloud, Zone1),
    loc("swedencentral", "Sweden Central", AzureCloud, Zone1),
    loc("switzerlandnorth", "Switzerland North", AzureCloud, Zone1),
    loc("switzerlandwest", "Switzerland West", AzureCloud, Zone1),
    loc("norwayeast", "Norway East", AzureCloud, Zone1),
    loc("norwaywest", "Norway West", AzureCloud, Zone1),
    loc("polandcentral", "Poland Central", AzureCloud, Zone1),
    loc("italynorth", "Italy North", AzureCloud, Zone1),
    loc("australiacentral", "Australia Central", AzureCloud, Zone1),
    loc("australiacentral2", "Australia Central 2", AzureCloud, Zone1),
    loc("australiaeast", "Australia East", AzureCloud, Zone2),
    loc("australiasoutheast", "Australia Southeast", AzureCloud, Zone2),
    loc("newzealandnorth", "New Zealand North", AzureCloud, Zone2),
    loc("japaneast", "Japan East", AzureCloud, Zone2),
    loc("japanwest", "Japan West", AzureCloud, Zone2),
    loc("koreacentral", "Korea Central", AzureCloud, Zone2),
    loc("koreasouth", "Korea South", AzureCloud, Zone2),
    loc("eastasia", "East Asia", AzureCloud, Zone2),
    loc("southeastasia", "Southeast Asia", AzureCloud, Zone2),
    loc("centralindia", "Central India", AzureCloud, Zone2),
    loc("southindia", "South India", AzureCloud, Zone2),
    loc("westindia", "West India", AzureCloud, Zone2),
    loc("brazilsouth", "Brazil South", AzureCloud, Zone3),
    loc("southafricanorth", "South Africa North", AzureCloud, Zone3),
    loc("southafricawest", "South Africa West", AzureCloud, Zone3),
    loc("uaenorth", "UAE North", AzureCloud, Zone3),
    loc("uaecentral", "UAE Central", AzureCloud, Zone3),
    loc("qatarcentral", "Qatar Central", AzureCloud, Zone3),
    loc("israelcentral", "Israel Central", AzureCloud, Zone3),
    loc("usgovvirginia", "US Gov Virginia", AzureUSGovernment, UsGov),
    loc("usgovarizona", "US Gov Arizona", AzureUSGovernment, UsGov),
    loc("usgovtexas", "US Gov Texas", AzureUSGovernment, UsGov),
    loc("chinaeast2", "China East 2", AzureChinaCloud, China),
    loc("chinanorth2", "China North 2", AzureChinaCloud, China),
    loc("chinanorth3", "China North 3", AzureChinaCloud, China),
];

/// Normalises `West Europe` / `westeurope` / `WestEurope` to the ARM name and finds the region.
pub fn find(name: &str) -> Option<&'static Location> {
    let norm: String = name.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    LOCATIONS.iter().find(|l| l.name == norm)
}

/// The regional BGP community Azure gives the VNets of a region (`bgpCommunities.regionalCommunity`,
/// read-only): the "private peering" column of Microsoft's published table, kept in
/// `data/regional-bgp-communities.csv` (provenance in `data/README.md`). `None` for a region the
/// table does not list.
pub fn regional_bgp_community(name: &str) -> Option<&'static str> {
    static TABLE: &str = include_str!("data/regional-bgp-communities.csv");
    let region = find(name)?.name;
    TABLE.lines().skip(1).find_map(|line| {
        let mut fields = line.split(',');
        let location = fields.next()?;
        let community = fields.nth(1)?;
        (location == region).then_some(community.trim())
    })
}

/// Finds a region or refuses with `LocationNotAvailableForResourceType`.
pub fn require(name: &str, resource: &str) -> Result<&'static Location, ArmError> {
    find(name).ok_or_else(|| {
        ArmError::bad_request(
            "LocationNotAvailableForResourceType",
            format!("The provided location '{name}' is not available for resource '{resource}'."),
        )
        .target(resource)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_communities_come_from_the_published_table() {
        assert_eq!(regional_bgp_community("westeurope"), Some("12076:50002"));
        assert_eq!(regional_bgp_community("North Europe"), Some("12076:50003"));
        assert_eq!(regional_bgp_community("eastus"), Some("12076:50004"));
        assert_eq!(regional_bgp_community("nowhere"), None);
        // Every row names a region Tessera knows, and its value has the published form.
        for line in include_str!("data/regional-bgp-communities.csv").lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "{line}");
            assert!(find(fields[0]).is_some(), "unknown region in {line}");
            assert!(fields[2].starts_with("12076:500") && fields[2].len() == 11, "{line}");
        }
    }

    #[test]
    fn names_normalise_and_zones_follow_the_pricing_table() {
        assert_eq!(find("West Europe").map(|l| l.name), Some("westeurope"));
        assert_eq!(find("japanwest").map(|l| l.zone), Some(Zone2));
        assert_eq!(find("australiacentral").map(|l| l.zone), Some(Zone1));
        assert_eq!(find("chinanorth2").map(|l| l.cloud), Some(AzureChinaCloud));
        assert!(find("mars").is_none());
    }
}

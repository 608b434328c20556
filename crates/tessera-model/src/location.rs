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
    loc("germanywestcentral", "Germany West Central", AzureCloud, Zone1),
    loc("swedencentral", "Sweden Central", AzureCloud, Zone1),
    loc("switzerlandnorth", "Switzerland North", AzureCloud, Zone1),
    loc("norwayeast", "Norway East", AzureCloud, Zone1),
    loc("polandcentral", "Poland Central", AzureCloud, Zone1),
    loc("italynorth", "Italy North", AzureCloud, Zone1),
    loc("australiacentral", "Australia Central", AzureCloud, Zone1),
    loc("australiacentral2", "Australia Central 2", AzureCloud, Zone1),
    loc("australiaeast", "Australia East", AzureCloud, Zone2),
    loc("australiasoutheast", "Australia Southeast", AzureCloud, Zone2),
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
    loc("uaenorth", "UAE North", AzureCloud, Zone3),
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
    fn names_normalise_and_zones_follow_the_pricing_table() {
        assert_eq!(find("West Europe").map(|l| l.name), Some("westeurope"));
        assert_eq!(find("japanwest").map(|l| l.zone), Some(Zone2));
        assert_eq!(find("australiacentral").map(|l| l.zone), Some(Zone1));
        assert_eq!(find("chinanorth2").map(|l| l.cloud), Some(AzureChinaCloud));
        assert!(find("mars").is_none());
    }
}

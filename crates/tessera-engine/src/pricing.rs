//! What VNet peering costs ($1–$7): no charge for a link, only for data crossing it ($1); the
//! sending VNet pays egress and the receiving VNet pays ingress ($2); within one region at the
//! intra-region rate, across regions at each side's billing-zone rate ($3, $4); traffic that
//! crosses a peering to reach a remote gateway is peering traffic ($5); each crossing is billed
//! again ($6). The price sheet defaults to Azure's published per-GB prices ($3) and can be
//! replaced by a file of the same shape.

use serde::{Deserialize, Serialize};
use tessera_model::ResourceId;
use tessera_model::location::{self, BillingZone};

/// Per-GB prices of one meter pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Ingress, per GB.
    pub ingress: f64,
    /// Egress, per GB.
    pub egress: f64,
}

/// The prices of peering traffic. A zone without a rate (Azure China by default: its prices
/// are published in another currency) meters bytes with no cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceSheet {
    /// ISO 4217 currency of every rate.
    pub currency: String,
    /// Both VNets in one region.
    pub intra_region: Rate,
    /// Global peering, by the billing zone of the side that pays.
    pub zone1: Rate,
    /// See `zone1`.
    pub zone2: Rate,
    /// See `zone1`.
    pub zone3: Rate,
    /// See `zone1`.
    pub us_gov: Rate,
    /// See `zone1`.
    #[serde(default)]
    pub china: Option<Rate>,
}

impl Default for PriceSheet {
    /// Azure's published list prices in USD ($3).
    fn default() -> Self {
        let r = |v: f64| Rate { ingress: v, egress: v };
        PriceSheet {
            currency: "USD".into(),
            intra_region: r(0.01),
            zone1: r(0.035),
            zone2: r(0.09),
            zone3: r(0.16),
            us_gov: r(0.044),
            china: None,
        }
    }
}

/// Which way data crosses, seen from the VNet that pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Into the VNet.
    Ingress,
    /// Out of the VNet.
    Egress,
}

/// Where a meter applies: within a region, or a billing zone of global peering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Both VNets in one region.
    IntraRegion,
    /// Global peering, the paying side's zone.
    Zone(BillingZone),
}

/// A meter: a direction and a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Meter {
    /// Ingress or egress.
    pub direction: Direction,
    /// Intra-region or a zone.
    pub scope: Scope,
}

impl Meter {
    /// The meter's name as Azure's price data spells it ($7): "Ingress data processed (Zone 1)";
    /// the intra-region meters are labelled "(Global)".
    pub fn name(&self) -> String {
        let label = match self.scope {
            Scope::IntraRegion => "Global",
            Scope::Zone(BillingZone::Zone1) => "Zone 1",
            Scope::Zone(BillingZone::Zone2) => "Zone 2",
            Scope::Zone(BillingZone::Zone3) => "Zone 3",
            Scope::Zone(BillingZone::UsGov) => "US Gov",
            Scope::Zone(BillingZone::China) => "China",
        };
        format!("{:?} data processed ({label})", self.direction)
    }
}

impl PriceSheet {
    /// The rate of a meter (None where the sheet has none).
    pub fn rate(&self, meter: Meter) -> Option<f64> {
        let rate = match meter.scope {
            Scope::IntraRegion => Some(self.intra_region),
            Scope::Zone(BillingZone::Zone1) => Some(self.zone1),
            Scope::Zone(BillingZone::Zone2) => Some(self.zone2),
            Scope::Zone(BillingZone::Zone3) => Some(self.zone3),
            Scope::Zone(BillingZone::UsGov) => Some(self.us_gov),
            Scope::Zone(BillingZone::China) => self.china,
        }?;
        Some(match meter.direction {
            Direction::Ingress => rate.ingress,
            Direction::Egress => rate.egress,
        })
    }

    /// Reads a sheet (JSON, or YAML which includes JSON): every field is required but `china`,
    /// rates are finite and not negative.
    pub fn parse(text: &str) -> Result<PriceSheet, String> {
        let sheet: PriceSheet = serde_yaml_ng::from_str(text).map_err(|e| format!("not a price sheet: {e}"))?;
        let rates = [sheet.intra_region, sheet.zone1, sheet.zone2, sheet.zone3, sheet.us_gov];
        let all = rates.iter().chain(sheet.china.as_ref());
        if all.flat_map(|r| [r.ingress, r.egress]).any(|v| !v.is_finite() || v < 0.0) {
            return Err("a price sheet's rates are finite and not negative".into());
        }
        if sheet.currency.len() != 3 || !sheet.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("'{}' is not an ISO 4217 currency code", sheet.currency));
        }
        Ok(sheet)
    }
}

/// What one side of a crossing pays.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    /// The VNet that pays.
    pub vnet: ResourceId,
    /// The meter.
    pub meter: Meter,
    /// Its name ($7).
    pub meter_name: String,
    /// GB metered.
    pub gb: f64,
    /// Cost in the sheet's currency (None where the sheet has no rate).
    pub cost: Option<f64>,
}

/// The scope of a crossing from a VNet in `from` to one in `to` (region names), for the side
/// in `side`: one region is intra-region; otherwise that side's billing zone ($3, $4). None for
/// a region Tessera does not know.
pub fn scope(from: &str, to: &str, side: &str) -> Option<Scope> {
    let (a, b) = (location::find(from)?, location::find(to)?);
    if a.name == b.name {
        return Some(Scope::IntraRegion);
    }
    Some(Scope::Zone(location::find(side)?.zone))
}

/// The two charges of `gb` crossing one peering from VNet `from` (in region `from_region`) to
/// VNet `to`: egress for the sender, ingress for the receiver ($2). Empty for a region Tessera
/// does not know.
pub fn crossing(
    sheet: &PriceSheet,
    (from, from_region): (&ResourceId, &str),
    (to, to_region): (&ResourceId, &str),
    gb: f64,
) -> Vec<Charge> {
    let mut out = Vec::new();
    for (vnet, side, direction) in [(from, from_region, Direction::Egress), (to, to_region, Direction::Ingress)] {
        let Some(scope) = scope(from_region, to_region, side) else { continue };
        let meter = Meter { direction, scope };
        let cost = sheet.rate(meter).map(|r| r * gb);
        out.push(Charge { vnet: vnet.clone(), meter, meter_name: meter.name(), gb, cost });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vnet(name: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/{name}"
        ))
        .expect("an id")
    }

    fn costs(from: &str, to: &str) -> Vec<(String, Option<f64>)> {
        let sheet = PriceSheet::default();
        crossing(&sheet, (&vnet("a"), from), (&vnet("b"), to), 100.0)
            .into_iter()
            .map(|c| (c.meter_name, c.cost.map(|v| (v * 1000.0).round() / 1000.0)))
            .collect()
    }

    #[test]
    fn each_side_pays_its_own_meter() {
        // $2, $3: one region, both sides at the intra-region rate.
        assert_eq!(
            costs("westeurope", "West Europe"),
            [
                ("Egress data processed (Global)".into(), Some(1.0)),
                ("Ingress data processed (Global)".into(), Some(1.0))
            ]
        );
        // $3, $4: West Europe (Zone 1) to Japan West (Zone 2): 0.035 egress plus 0.09 ingress.
        assert_eq!(
            costs("westeurope", "japanwest"),
            [
                ("Egress data processed (Zone 1)".into(), Some(3.5)),
                ("Ingress data processed (Zone 2)".into(), Some(9.0))
            ]
        );
        assert_eq!(costs("brazilsouth", "eastus")[0], ("Egress data processed (Zone 3)".into(), Some(16.0)));
        assert_eq!(costs("usgovvirginia", "usgovtexas")[1], ("Ingress data processed (US Gov)".into(), Some(4.4)));
        // Azure China's prices are not in USD: metered, not priced.
        assert_eq!(costs("chinanorth2", "chinanorth3")[0], ("Egress data processed (China)".into(), None));
        assert!(costs("nowhere", "westeurope").is_empty());
    }

    #[test]
    fn a_sheet_is_read_and_checked() {
        let text = serde_json::to_string(&PriceSheet::default()).expect("json");
        assert_eq!(PriceSheet::parse(&text), Ok(PriceSheet::default()));
        let bad = text.replace("\"USD\"", "\"usd\"");
        assert!(PriceSheet::parse(&bad).is_err());
        let negative = text.replacen("0.01", "-0.01", 1);
        assert!(PriceSheet::parse(&negative).is_err());
        assert!(PriceSheet::parse("currency: EUR").is_err(), "every zone is required");
        assert!(PriceSheet::parse(&text.replace("\"currency\"", "\"extra\": 1, \"currency\"")).is_err());
    }
}

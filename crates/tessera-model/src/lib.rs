//! Tessera's network model: Azure Resource Manager resource types in their ARM JSON shapes,
//! typed case-insensitive resource ids, prefixes, regions, the ARM error type, and the two
//! topology file formats (ARM JSON and concise YAML). No I/O.

pub mod account;
mod arm_enum;
pub mod compute;
pub mod envelope;
pub mod error;
pub mod gateway;
pub mod id;
pub mod lb;
pub mod location;
pub mod network;
pub mod prefix;
pub mod public_ip;
pub mod resource;
pub mod routing;
pub mod security;
pub mod unmodelled;
pub mod yaml;

pub use error::{ArmError, ArmResult};

/// The tag that places a VM (or a NIC) on a host: that host's agent runs its port.
pub const HOST_TAG: &str = "tessera-host";
/// The tag that asks `tessera up` to run a local network gateway as a simulated on-premises
/// site: a namespace with the IPsec and BGP daemons and a host behind it on the LAN the value
/// names (a prefix), or on the first prefix of the site's address space (value `true`).
pub const SIMULATE_TAG: &str = "tessera-simulate";
/// The host of ports without a placement tag.
pub const DEFAULT_HOST: &str = "local";
pub use id::{Kind, ResourceId};
pub use prefix::IpNet;
pub use resource::Resource;

//! What the switch does with a frame: deliver it to a port, answer it, or drop it for a named
//! reason. Outcomes and reasons are small `Copy` values, so counting them costs nothing.

use tessera_engine::forward::Cause;

/// Which way a frame travels, as seen from the VM of the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the VM (leaving the port).
    Outbound,
    /// Arriving for the VM (from another host).
    Inbound,
}

/// A port of the switch (one per NIC).
pub type PortId = u32;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The frame is not Ethernet II carrying ARP, IPv4 or IPv6.
    Unparsable,
    /// An IP protocol other than TCP, UDP or ICMP.
    UnsupportedProtocol,
    /// The source address is not the port's, and the NIC does not forward (no ipForwarding).
    SpoofedSource,
    /// The port is not known to the switch.
    UnknownPort,
    /// A route with next hop None (or no route at all).
    NoRoute,
    /// An NSG rule denied the packet leaving its port.
    NsgDeniedOutbound,
    /// An NSG rule denied the packet entering its port.
    NsgDeniedInbound,
    /// The peering is not Connected in both directions.
    PeeringNotConnected,
    /// Traffic from outside the peer's space, and the receiving link does not allow forwarded traffic.
    ForwardedTrafficNotAllowed,
    /// Subnet peering: the source subnet is not peered (SP5).
    SubnetNotPeered,
    /// Nothing holds the destination address.
    NoSuchHost,
    /// The appliance's NIC does not have IP forwarding enabled.
    ApplianceForwardingDisabled,
    /// The appliance address of a UDR cannot be reached directly (U4).
    ApplianceUnreachable,
    /// A Basic load balancer frontend reached over global peering (LB1).
    BasicLoadBalancerOverGlobalPeering,
    /// No load-balancing rule for the port, or no backend admits the flow.
    NoLoadBalancerBackend,
    /// The destination is on the internet; this switch has no internet uplink.
    Internet,
    /// The destination is behind a virtual network gateway; this switch has no gateway port.
    Gateway,
    /// The destination NIC has no port on this switch.
    DestinationNotOnThisHost,
    /// The flow table is full, and no port holds more than its share to evict from.
    FlowTableFull,
    /// The port holds its quota of flow entries: its new flows wait for its old ones to end.
    FlowQuotaExceeded,
}

impl DropReason {
    /// Every reason, for counters and their tests.
    pub const ALL: &'static [DropReason] = &[
        DropReason::Unparsable,
        DropReason::UnsupportedProtocol,
        DropReason::SpoofedSource,
        DropReason::UnknownPort,
        DropReason::NoRoute,
        DropReason::NsgDeniedOutbound,
        DropReason::NsgDeniedInbound,
        DropReason::PeeringNotConnected,
        DropReason::ForwardedTrafficNotAllowed,
        DropReason::SubnetNotPeered,
        DropReason::NoSuchHost,
        DropReason::ApplianceForwardingDisabled,
        DropReason::ApplianceUnreachable,
        DropReason::BasicLoadBalancerOverGlobalPeering,
        DropReason::NoLoadBalancerBackend,
        DropReason::Internet,
        DropReason::Gateway,
        DropReason::DestinationNotOnThisHost,
        DropReason::FlowTableFull,
        DropReason::FlowQuotaExceeded,
    ];
}

impl From<Cause> for DropReason {
    fn from(c: Cause) -> Self {
        match c {
            Cause::NsgDeniedOutbound => DropReason::NsgDeniedOutbound,
            Cause::NsgDeniedInbound => DropReason::NsgDeniedInbound,
            Cause::NoRoute | Cause::NextHopNone | Cause::GatewayHasNoRoute => DropReason::NoRoute,
            Cause::NoPeeringBack | Cause::PeeringNotConnected => DropReason::PeeringNotConnected,
            Cause::SubnetNotPeered => DropReason::SubnetNotPeered,
            Cause::ForwardedTrafficNotAllowed => DropReason::ForwardedTrafficNotAllowed,
            Cause::NoResourceAtAddress => DropReason::NoSuchHost,
            Cause::ApplianceUnreachable => DropReason::ApplianceUnreachable,
            Cause::IpForwardingDisabled => DropReason::ApplianceForwardingDisabled,
            Cause::BasicLoadBalancerOverGlobalPeering => DropReason::BasicLoadBalancerOverGlobalPeering,
            Cause::NoLoadBalancingRule | Cause::NoHealthyBackend => DropReason::NoLoadBalancerBackend,
            // Only a walk of several steps sees a loop; the switch takes one step at a time and
            // the appliances' kernels end a loop with the TTL, as in Azure.
            Cause::RoutingLoop => DropReason::NoRoute,
            Cause::DestinationNotRoutableOnInternet => DropReason::Internet,
        }
    }
}

/// The result of processing one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Hand the frame, rewritten in place, to a local port's VM.
    Deliver(PortId),
    /// Send this frame back to the VM that sent the request (ARP replies).
    Hairpin(Vec<u8>),
    /// Send the frame, rewritten in place, to another host: wrap it in VXLAN
    /// ([`crate::overlay::encapsulate`]) with this VNI and send it to that underlay address.
    Encapsulate {
        /// The host's underlay address.
        host: std::net::IpAddr,
        /// The VNI of the destination's VNet.
        vni: u32,
    },
    /// Dropped.
    Drop(DropReason),
}

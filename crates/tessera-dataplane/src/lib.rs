//! Tessera's virtual switch engine: a library with no syscalls. One port per NIC, built from
//! the engine's compiled programs; `Switch::process(port, direction, frame)` returns an
//! [`Outcome`]: deliver to a local port, answer (ARP), or drop with a named [`DropReason`].
//!
//! ```text
//!   frame ──parse──▶ ARP request ──▶ Hairpin(reply from the gateway MAC)
//!          │
//!          └──▶ IP ──▶ flow table (port, 5-tuple) ──hit, current generation──▶ cached action
//!                              │ miss / stale
//!                              ▼
//!                slow path: engine step (NSG out, route, peering, NSG in at the next port)
//!                              │ cache; mark the reply established at that port (N4)
//!                              ▼
//!                     Deliver { port, frame with gateway/destination MACs, NAT } | Drop(reason)
//! ```

pub mod aging;
pub mod control;
pub mod counters;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod outcome;
pub mod overlay;
pub mod switch;
mod v4_flows;
pub mod wire;

pub use outcome::{Direction, DropReason, Outcome, PortId};
pub use switch::{FlowLimits, Switch};

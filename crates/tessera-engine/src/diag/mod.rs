//! Diagnostics evaluated on the compiled programs, answering with ARM response bodies:
//! effective routes and security rules, next hop, IP flow verify, connectivity check, and the
//! reachability matrix, and what a traffic matrix would cost on peerings.

pub mod address;
pub mod cost;
pub mod effective;
pub mod matrix;
pub mod resolve;
pub mod topology;
pub mod trace;
pub mod watcher;

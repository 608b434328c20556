//! Tessera's ARM-compatible HTTPS API (arm-api.md): resource groups, subscriptions and tenants;
//! every network resource type of the engine with child resources and embedded collections;
//! long-running operations, etags, paging and ARM error bodies; bearer-token sign-in; and the
//! NIC and Network Watcher diagnostics, all answered by the engine and kept in the store.

mod actions;
pub mod auth;
mod authorization;
mod commit;
mod conn;
mod console;
mod core;
mod feed;
mod follow;
mod groups;
mod http;
mod identity;
mod insights;
mod leader;
pub mod linked;
mod locations;
pub mod metrics;
mod operations;
mod probes;
pub mod rbac;
mod resources;
mod route;
pub use route::{OPERATION_FAMILIES, operation_family};
mod server;
mod shared_key;
mod signin;
pub mod tls;
mod usage;

pub use http::ApiSettings;
pub use leader::ClusterSettings;
pub use server::{Credentials, RunningServer, ServeConfig, StoreKind, start};

//! The API over real HTTPS on loopback: bad input never gets a 5xx and never changes the state,
//! the long-running-operation shapes of arm-api.md §5, and durability across a restart.

mod common;
mod console;

mod bad_input;
mod clients;
mod feed;
mod matrix;
mod operations;
mod persistence;
mod probes;
mod rbac;
mod references;
mod restart_property;
mod shared_store;
mod slow_clients;
mod takeover;
mod usage;

//! Refusals: every ARM error code the engine can return through `Engine::apply` or
//! `load::load`, each triggered through the public API. Every case checks the code, the HTTP
//! status, and that the refusal left the desired state and the compiled programs untouched
//! (`assert_refused`).
//!
//! Rule numbers (P4, R1, G3, N1, U1, SP4, GWY2, …) refer to the behaviour spec
//! `azure-semantics.md`; O-numbers (O2, O7) to `azure-observed.md`; "§2.5" is the limits table.
//!
//! The last test (`every_error_code_in_the_sources_is_covered`) scans the engine and model
//! sources for error codes and fails on any code that is not in [`COVERED`] or [`EXCLUDED`].
//!
//! Tests named `regression_*` pin engine bugs found while writing this file (all fixed).

mod asgs;
mod compute;
mod coverage;
mod files;
mod fixture;
mod gateways;
mod general;
mod peering;
mod public_ips;
mod regressions;
mod security;
mod usage;
mod vnets;

//! `tessera cost`: what a traffic matrix would cost a month on peerings (what-if, $1-$7), and
//! the price sheets `cost --prices` and `serve --prices` read.

use std::path::Path;
use std::process::ExitCode;

use tessera_engine::diag::cost::{TrafficMatrix, cost};
use tessera_engine::pricing::PriceSheet;
use tessera_model::ArmError;

use crate::target::Target;
use crate::{print_json, render};

/// Where the question goes and how the answer prints.
pub(crate) struct Question<'a> {
    /// A topology file (none: the running server).
    pub(crate) file: Option<&'a Path>,
    /// The server's credentials.
    pub(crate) credentials: &'a Path,
    /// Print JSON.
    pub(crate) json: bool,
}

fn read(p: &Path) -> Result<String, ArmError> {
    std::fs::read_to_string(p).map_err(|e| ArmError::bad_request("FileNotReadable", format!("{}: {e}", p.display())))
}

/// A price sheet file.
pub(crate) fn read_prices(p: &Path) -> Result<PriceSheet, ArmError> {
    PriceSheet::parse(&read(p)?)
        .map_err(|e| ArmError::bad_request("InvalidPriceSheet", format!("{}: {e}", p.display())))
}

/// Prices `traffic` on the topology (Azure's prices, or the sheet in `prices`).
pub(crate) fn run(q: Question<'_>, traffic: &Path, prices: Option<&Path>) -> Result<ExitCode, ArmError> {
    let t = Target::open(q.file, q.credentials)?;
    let sheet = match prices {
        Some(p) => read_prices(p)?,
        None => PriceSheet::default(),
    };
    let matrix = TrafficMatrix::parse(&read(traffic)?)
        .map_err(|e| ArmError::bad_request("InvalidTrafficMatrix", format!("{}: {e}", traffic.display())))?;
    let report = cost(&t.engine, &sheet, &matrix)?;
    if q.json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        render::cost(&report);
    }
    Ok(ExitCode::SUCCESS)
}

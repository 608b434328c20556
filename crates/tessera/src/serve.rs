//! `tessera serve`: the API server in the foreground until Ctrl-C.

use std::process::ExitCode;

use tessera_model::ArmError;

fn failed(e: impl std::fmt::Display) -> ArmError {
    ArmError::with_status(500, "ServeFailed", e.to_string())
}

/// Runs the server until interrupted.
pub(crate) fn run(config: tessera_api::ServeConfig) -> Result<ExitCode, ArmError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(failed)?;
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let server = tessera_api::start(config).await.map_err(failed)?;
        let c = &server.credentials;
        crate::emit!("tessera: serving the ARM API on {}", c.endpoint);
        crate::emit!("  data directory   {}", data_dir.display());
        crate::emit!("  CA certificate   {}", c.ca_certificate.display());
        crate::emit!("  tenant           {}", c.tenant_id);
        crate::emit!("  subscription     {}", c.subscription_id);
        crate::emit!("  client id        {}", c.client_id);
        crate::emit!("  client secret    in {}", data_dir.join("credentials.json").display());
        crate::emit!("");
        crate::emit!("Use it with az:");
        crate::emit!("  export REQUESTS_CA_BUNDLE={}", c.ca_certificate.display());
        crate::emit!(
            "  az cloud register -n Tessera --endpoint-resource-manager {}/ && az cloud set -n Tessera",
            c.endpoint
        );
        crate::emit!("  az config set core.instance_discovery=false");
        crate::emit!("  az login --service-principal -u {} -p <secret> --tenant {}", c.client_id, c.tenant_id);
        tokio::select! {
            r = server.wait() => r.map_err(failed)?,
            _ = tokio::signal::ctrl_c() => crate::emit!("tessera: stopping"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

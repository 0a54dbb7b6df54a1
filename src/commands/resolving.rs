//! Registry options shared by `lock` and `pin`, and how their results print.

use std::path::PathBuf;
use std::time::Duration;

use hacompile_registry::{Platform, ResolverConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Pin one platform's manifest instead of the multi-arch index. Breaks
    /// clusters whose nodes have different architectures.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    /// Reach this registry (host:port) over plain HTTP. Only registries named here.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
    /// Trust this CA (PEM) besides the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Seconds the resolution of one image may take in all: token, manifest
    /// requests, bodies and retries (connect: a third of it, at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Retries after a 429, 5xx or timeout.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

impl RegistryArgs {
    pub fn config(&self) -> Result<ResolverConfig, String> {
        let ca_pem = match &self.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read the CA file {}: {e}", p.display()))?),
            None => None,
        };
        Ok(ResolverConfig {
            insecure: self.insecure.clone(),
            ca_pem,
            platform: self.platform.clone(),
            connect_timeout: Duration::from_secs((self.timeout / 3).max(1)),
            timeout: Duration::from_secs(self.timeout.max(1)),
            max_retries: self.retries,
            ..ResolverConfig::default()
        })
    }

    /// The resolver these options describe, reporting to a progress line
    /// on a terminal; a bad option is reported here.
    pub fn resolver(&self, progress: std::sync::Arc<crate::progress::Images>) -> Option<hacompile_registry::Resolver> {
        match self.config().and_then(hacompile_registry::Resolver::new) {
            Ok(r) => Some(r.with_progress(progress)),
            Err(e) => {
                crate::report::error(&e, None);
                None
            }
        }
    }

    /// Says, once, what `--platform` costs.
    pub fn warn_platform(&self) {
        if let Some(p) = &self.platform {
            crate::report::error(
                &format!("pinning the {p} manifest, not the multi-arch index"),
                Some("nodes of another architecture will fail to pull these images; omit --platform to pin the index"),
            );
        }
    }
}

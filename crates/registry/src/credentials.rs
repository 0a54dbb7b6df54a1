//! Registry credentials, found the way docker finds them, plus an
//! environment override for CI. Values are never printed or logged.

use std::fmt;

/// Where credentials came from (printed in auth errors instead of the values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `HACOMPILE_REGISTRY_USERNAME`/`_PASSWORD` for `HACOMPILE_REGISTRY_HOST`.
    Environment,
    /// The docker config file (`auths`), a `credsStore` or a `credHelpers` entry.
    DockerConfig,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
        source: CredentialSource,
    },
    /// An identity token (refresh token) for the registry's token service.
    IdentityToken {
        token: String,
        source: CredentialSource,
    },
}

impl Credentials {
    pub fn source(&self) -> &CredentialSource {
        match self {
            Credentials::Basic { source, .. } | Credentials::IdentityToken { source, .. } => source,
        }
    }
}

// Never show credentials, not even in debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, source, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted>, source: {source:?} }}")
            }
            Credentials::IdentityToken { source, .. } => {
                write!(f, "IdentityToken {{ <redacted>, source: {source:?} }}")
            }
        }
    }
}

/// The key docker's config uses for a registry (`https://index.docker.io/v1/` for Docker Hub).
pub fn config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/".to_owned(),
        other => other.to_owned(),
    }
}

/// Credentials for a registry, or `None` for anonymous access.
pub fn lookup(registry: &str) -> Option<Credentials> {
    if let (Ok(host), Ok(username), Ok(password)) = (
        std::env::var("HACOMPILE_REGISTRY_HOST"),
        std::env::var("HACOMPILE_REGISTRY_USERNAME"),
        std::env::var("HACOMPILE_REGISTRY_PASSWORD"),
    ) && host == registry
    {
        return Some(Credentials::Basic { username, password, source: CredentialSource::Environment });
    }
    match docker_credential::get_credential(&config_key(registry)) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            Some(Credentials::Basic { username, password, source: CredentialSource::DockerConfig })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            Some(Credentials::IdentityToken { token, source: CredentialSource::DockerConfig })
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let c = Credentials::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
            source: CredentialSource::Environment,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}

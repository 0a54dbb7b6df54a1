use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hacompile_image::{Digest, ImageRef};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::MANIFEST_MEDIA_TYPES;
use crate::credentials::{self, CredentialSource, Credentials};

/// `os/arch[/variant]`, for pinning one platform's manifest (opt-in).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after(&soon).expect("a date");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO), "a past date: retry now");
        assert_eq!(retry_after("soon"), None);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Self { os: (*os).into(), architecture: (*arch).into(), variant: None })
            }
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Self { os: (*os).into(), architecture: (*arch).into(), variant: Some((*v).into()) })
            }
            _ => Err(format!("`{s}` is not a platform; write os/arch, e.g. linux/amd64 or linux/arm64/v8")),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// `host:port` registries reached over plain HTTP (only those named).
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust besides the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub platform: Option<Platform>,
    pub connect_timeout: Duration,
    /// The whole of one request, headers and body.
    pub request_timeout: Duration,
    /// Retries after a 429, a 5xx or a timeout (the first try not counted).
    pub max_retries: u32,
    /// The longest `Retry-After` honoured; a longer one ends the retries.
    pub max_retry_after: Duration,
    /// First backoff after a 5xx or timeout; doubled each retry.
    pub backoff: Duration,
    /// Requests in flight at once to one registry.
    pub per_registry: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            ca_pem: None,
            platform: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            max_retry_after: Duration::from_secs(60),
            backoff: Duration::from_millis(500),
            per_registry: 8,
        }
    }
}

/// A reference resolved to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub digest: Digest,
    pub media_type: String,
}

/// Why a reference could not be resolved. Every variant names the image and
/// the registry; none carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{image}: {registry} refused access (HTTP {status}); {}", match .credentials {
        Some(CredentialSource::Environment) => "credentials from HACOMPILE_REGISTRY_* were sent and rejected".to_owned(),
        Some(CredentialSource::DockerConfig) => "credentials from the docker config were sent and rejected (check `docker login`)".to_owned(),
        None => format!("no credentials were found for {registry} (run `docker login {registry}`, or set HACOMPILE_REGISTRY_HOST/_USERNAME/_PASSWORD)"),
    })]
    Unauthorized { image: String, registry: String, status: u16, credentials: Option<CredentialSource> },
    #[error("{image}: {registry} has no {what}")]
    NotFound { image: String, registry: String, what: String },
    #[error("{image}: {registry} is rate limiting (HTTP 429) after {attempts} attempts{}", rate_headers(.headers))]
    RateLimited { image: String, registry: String, attempts: u32, headers: Vec<(String, String)> },
    #[error("{image}: {registry} answered HTTP {status} after {attempts} attempts")]
    Server { image: String, registry: String, status: u16, attempts: u32 },
    #[error("{image}: {registry} did not answer in time ({attempts} attempts)")]
    Timeout { image: String, registry: String, attempts: u32 },
    #[error(
        "{image}: TLS with {registry} failed: {detail} (a private CA? use --ca-file; plain HTTP? use --insecure-registry {registry})"
    )]
    Tls { image: String, registry: String, detail: String },
    #[error("{image}: cannot resolve the host of {registry}: {detail}")]
    Dns { image: String, registry: String, detail: String },
    #[error("{image}: {registry} refused the connection")]
    Refused { image: String, registry: String },
    #[error("{image}: cannot reach {registry}: {detail}")]
    Connection { image: String, registry: String, detail: String },
    #[error(
        "{image}: the manifest from {registry} hashes to {computed}, not the {claimed} the registry claims; refusing to pin it"
    )]
    DigestMismatch { image: String, registry: String, claimed: String, computed: String },
    #[error("{image}: {registry} broke the protocol: {detail}")]
    Protocol { image: String, registry: String, detail: String },
    #[error("{image}: the image has no manifest for platform {platform}")]
    NoPlatform { image: String, platform: String },
    #[error("{image}: {detail}")]
    Reference { image: String, detail: String },
}

fn rate_headers(h: &[(String, String)]) -> String {
    if h.is_empty() {
        String::new()
    } else {
        format!(" ({})", h.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
    }
}

/// A bearer token (or `None`: the registry needs none), fetched once per key.
type TokenCell = Arc<OnceCell<Option<String>>>;

struct Inner {
    http: reqwest::Client,
    oci: oci_client::Client,
    config: ResolverConfig,
    /// One token per registry and repository (the pull scope).
    tokens: Mutex<HashMap<(String, String), TokenCell>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Resolves references concurrently, bounded per registry.
pub struct Resolver {
    inner: Arc<Inner>,
}

/// The host that serves a registry's API.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" { "registry-1.docker.io" } else { registry }
}

impl Resolver {
    pub fn new(config: ResolverConfig) -> Result<Self, String> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("hacompile/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5));
        let mut extra = Vec::new();
        if let Some(pem) = &config.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("the CA file is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            http = http.tls_certs_merge(certs);
            extra.push(Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() });
        }
        let http = http.build().map_err(|e| format!("cannot set up HTTP: {e}"))?;
        let oci = oci_client::Client::try_from(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
            extra_root_certificates: extra,
            connect_timeout: Some(config.connect_timeout),
            read_timeout: Some(config.request_timeout),
            ..Default::default()
        })
        .map_err(|e| format!("cannot set up the registry client: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                oci,
                config,
                tokens: Mutex::new(HashMap::new()),
                limits: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Resolves every reference by its tag (never by a digest it carries),
    /// each distinct repository:tag once, all concurrently. Results are in
    /// the order of `refs`.
    pub fn resolve_all(&self, refs: &[ImageRef]) -> Vec<Result<Resolved, ResolveError>> {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                return refs
                    .iter()
                    .map(|r| {
                        Err(ResolveError::Reference {
                            image: r.as_written().into(),
                            detail: format!("cannot start the I/O runtime: {e}"),
                        })
                    })
                    .collect();
            }
        };
        runtime.block_on(async {
            let mut unique: Vec<(String, ImageRef)> = Vec::new();
            let key = |r: &ImageRef| format!("{}:{}", r.canonical_name(), r.tag().unwrap_or(""));
            for r in refs {
                if !unique.iter().any(|(k, _)| *k == key(r)) {
                    unique.push((key(r), r.clone()));
                }
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (_, r)) in unique.iter().enumerate() {
                let inner = Arc::clone(&self.inner);
                let r = r.clone();
                tasks.spawn(async move { (i, inner.resolve(&r).await) });
            }
            let mut results: Vec<Option<Result<Resolved, ResolveError>>> = vec![None; unique.len()];
            while let Some(done) = tasks.join_next().await {
                if let Ok((i, result)) = done {
                    results[i] = Some(result);
                }
            }
            refs.iter()
                .map(|r| {
                    let i = unique.iter().position(|(k, _)| *k == key(r)).expect("every ref was queued");
                    results[i].clone().unwrap_or_else(|| {
                        Err(ResolveError::Reference {
                            image: r.as_written().into(),
                            detail: "the resolution task failed".into(),
                        })
                    })
                })
                .collect()
        })
    }
}

enum Attempt {
    Done(reqwest::Response),
    Retry { status: Option<u16>, wait: Duration, headers: Vec<(String, String)> },
    Fail(ResolveError),
}

impl Inner {
    fn limit(&self, registry: &str) -> Arc<Semaphore> {
        let mut map = self.limits.lock().expect("lock poisoned only by a panic");
        Arc::clone(
            map.entry(registry.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.config.per_registry.max(1)))),
        )
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if self.config.insecure.iter().any(|h| h == registry) { "http" } else { "https" }
    }

    async fn token(&self, image: &ImageRef, creds: &Option<Credentials>) -> Result<Option<String>, ResolveError> {
        let cell = {
            let mut map = self.tokens.lock().expect("lock poisoned only by a panic");
            Arc::clone(map.entry((image.registry().to_owned(), image.repository().to_owned())).or_default())
        };
        let auth = match creds {
            Some(Credentials::Basic { username, password, .. }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Some(Credentials::IdentityToken { token, .. }) => RegistryAuth::Bearer(token.clone()),
            None => RegistryAuth::Anonymous,
        };
        let reference = Reference::with_tag(
            image.registry().to_owned(),
            image.repository().to_owned(),
            image.tag().unwrap_or("latest").to_owned(),
        );
        cell.get_or_try_init(|| async {
            self.oci
                .auth(&reference, &auth, RegistryOperation::Pull)
                .await
                .map_err(|e| self.auth_error(image, creds, &e))
        })
        .await
        .cloned()
    }

    fn auth_error(
        &self,
        image: &ImageRef,
        creds: &Option<Credentials>,
        e: &oci_client::errors::OciDistributionError,
    ) -> ResolveError {
        use oci_client::errors::OciDistributionError as E;
        let registry = image.registry().to_owned();
        let img = image.as_written().to_owned();
        match e {
            E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => ResolveError::Unauthorized {
                image: img,
                registry,
                status: 401,
                credentials: creds.as_ref().map(|c| c.source().clone()),
            },
            E::ServerError { code, .. } if *code == 401 || *code == 403 => ResolveError::Unauthorized {
                image: img,
                registry,
                status: *code,
                credentials: creds.as_ref().map(|c| c.source().clone()),
            },
            E::ServerError { code, .. } => ResolveError::Server { image: img, registry, status: *code, attempts: 1 },
            E::RequestError(err) => classify(image, err, 1),
            other => ResolveError::Protocol { image: img, registry, detail: format!("authentication: {other}") },
        }
    }

    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, ResolveError> {
        let Some(tag) = image.tag() else {
            return Err(ResolveError::Reference {
                image: image.as_written().into(),
                detail: "has no tag to resolve; write name:tag".into(),
            });
        };
        let permit = self.limit(image.registry()).acquire_owned().await.expect("semaphores are never closed");
        let creds = credentials::lookup(image.registry());
        let token = self.token(image, &creds).await?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{tag}",
            self.scheme(image.registry()),
            api_host(image.registry()),
            image.repository()
        );
        let head = match self.request(image, reqwest::Method::HEAD, &url, &creds, &token).await {
            Err(ResolveError::NotFound { .. }) => return Err(self.not_found(image, &url, &creds, &token).await),
            other => other?,
        };
        let claimed = header(&head, "docker-content-digest");
        let media_type = media_type(&head);
        let resolved = match (claimed, &self.config.platform) {
            (Some(d), None) => {
                let digest =
                    Digest::parse(&d).map_err(|e| protocol(image, format!("invalid Docker-Content-Digest: {e}")))?;
                Resolved { digest, media_type: media_type.unwrap_or_default() }
            }
            // No digest header, or a platform to pick: fetch and verify the body.
            _ => {
                let (digest, media_type, body) = self.fetch(image, &url, &creds, &token).await?;
                match &self.config.platform {
                    None => Resolved { digest, media_type },
                    Some(p) => self.pick_platform(
                        image,
                        &media_type,
                        &body,
                        p,
                        Resolved { digest: digest.clone(), media_type: media_type.clone() },
                    )?,
                }
            }
        };
        drop(permit);
        Ok(resolved)
    }

    /// After a manifest 404, tells a missing repository from a missing tag:
    /// registries answer MANIFEST_UNKNOWN for both on the manifest endpoint,
    /// but the tag list of a missing repository is NAME_UNKNOWN.
    async fn not_found(
        &self,
        image: &ImageRef,
        manifest_url: &str,
        creds: &Option<Credentials>,
        token: &Option<String>,
    ) -> ResolveError {
        let url = match manifest_url.rsplit_once("/manifests/") {
            Some((base, _)) => format!("{base}/tags/list?n=1"),
            None => manifest_url.to_owned(),
        };
        let req = authorize(self.http.get(&url), creds, token);
        let codes: Vec<String> = match req.send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| {
                    v["errors"]
                        .as_array()
                        .map(|e| e.iter().filter_map(|x| x["code"].as_str().map(str::to_owned)).collect())
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let what = if codes.iter().any(|c| c == "NAME_UNKNOWN") {
            format!("repository `{}`", image.repository())
        } else {
            format!("tag `{}` in repository `{}`", image.tag().unwrap_or(""), image.repository())
        };
        ResolveError::NotFound { image: image.as_written().into(), registry: image.registry().into(), what }
    }

    /// GETs a manifest and checks that its bytes hash to the digest claimed.
    async fn fetch(
        &self,
        image: &ImageRef,
        url: &str,
        creds: &Option<Credentials>,
        token: &Option<String>,
    ) -> Result<(Digest, String, Vec<u8>), ResolveError> {
        let response = self.request(image, reqwest::Method::GET, url, creds, token).await?;
        let claimed = header(&response, "docker-content-digest");
        let media_type = media_type(&response).unwrap_or_default();
        let body = response.bytes().await.map_err(|e| classify(image, &e, 1))?.to_vec();
        let computed =
            format!("sha256:{}", Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect::<String>());
        if let Some(claimed) = claimed
            && claimed != computed
            && claimed.starts_with("sha256:")
        {
            return Err(ResolveError::DigestMismatch {
                image: image.as_written().into(),
                registry: image.registry().into(),
                claimed,
                computed,
            });
        }
        let digest = Digest::parse(&computed).expect("a sha256 we formatted is valid");
        Ok((digest, media_type, body))
    }

    fn pick_platform(
        &self,
        image: &ImageRef,
        media_type: &str,
        body: &[u8],
        p: &Platform,
        single: Resolved,
    ) -> Result<Resolved, ResolveError> {
        if !(media_type.contains("index") || media_type.contains("manifest.list")) {
            return Ok(single);
        }
        let index: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| protocol(image, format!("the index is not JSON: {e}")))?;
        let chosen = index["manifests"].as_array().into_iter().flatten().find(|m| {
            let pl = &m["platform"];
            pl["os"] == p.os.as_str()
                && pl["architecture"] == p.architecture.as_str()
                && p.variant.as_ref().is_none_or(|v| pl["variant"] == v.as_str())
        });
        let Some(m) = chosen else {
            return Err(ResolveError::NoPlatform { image: image.as_written().into(), platform: p.to_string() });
        };
        let digest = m["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| protocol(image, "an index entry has no valid digest".into()))?;
        Ok(Resolved { digest, media_type: m["mediaType"].as_str().unwrap_or_default().to_owned() })
    }

    /// One request with bounded retries: 429 honours Retry-After (up to a
    /// cap), 5xx and timeouts back off exponentially.
    async fn request(
        &self,
        image: &ImageRef,
        method: reqwest::Method,
        url: &str,
        creds: &Option<Credentials>,
        token: &Option<String>,
    ) -> Result<reqwest::Response, ResolveError> {
        let mut attempts = 0;
        let mut backoff = self.config.backoff;
        loop {
            attempts += 1;
            let req = self.http.request(method.clone(), url).header("Accept", MANIFEST_MEDIA_TYPES.join(", "));
            let req = authorize(req, creds, token);
            let outcome = match req.send().await {
                Err(e) if e.is_timeout() => Attempt::Retry { status: None, wait: backoff, headers: Vec::new() },
                Err(e) => Attempt::Fail(classify(image, &e, attempts)),
                Ok(r) => self.judge(image, r, creds, backoff),
            };
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { status, wait, headers } => {
                    let registry = image.registry().to_owned();
                    let img = image.as_written().to_owned();
                    if attempts > self.config.max_retries || wait > self.config.max_retry_after {
                        return Err(match status {
                            Some(429) => ResolveError::RateLimited { image: img, registry, attempts, headers },
                            Some(code) => ResolveError::Server { image: img, registry, status: code, attempts },
                            None => ResolveError::Timeout { image: img, registry, attempts },
                        });
                    }
                    tokio::time::sleep(wait).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }

    fn judge(&self, image: &ImageRef, r: reqwest::Response, creds: &Option<Credentials>, backoff: Duration) -> Attempt {
        let status = r.status().as_u16();
        let registry = image.registry().to_owned();
        let img = image.as_written().to_owned();
        match status {
            200..=299 => Attempt::Done(r),
            401 | 403 => Attempt::Fail(ResolveError::Unauthorized {
                image: img,
                registry,
                status,
                credentials: creds.as_ref().map(|c| c.source().clone()),
            }),
            404 => {
                // A missing repository and a missing tag both 404; the error
                // code in the body (on GET) tells them apart.
                Attempt::Fail(ResolveError::NotFound {
                    image: img,
                    registry,
                    what: format!("tag `{}` in repository `{}`", image.tag().unwrap_or(""), image.repository()),
                })
            }
            429 => {
                let wait = header(&r, "retry-after").and_then(|v| retry_after(&v)).unwrap_or(backoff);
                let headers = r
                    .headers()
                    .iter()
                    .filter(|(k, _)| {
                        k.as_str().starts_with("ratelimit")
                            || k.as_str() == "retry-after"
                            || k.as_str().starts_with("docker-ratelimit")
                    })
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                Attempt::Retry { status: Some(429), wait, headers }
            }
            500..=599 => Attempt::Retry { status: Some(status), wait: backoff, headers: Vec::new() },
            other => Attempt::Fail(ResolveError::Server { image: img, registry, status: other, attempts: 1 }),
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The bearer token when the registry issued one, else basic credentials.
fn authorize(
    req: reqwest::RequestBuilder,
    creds: &Option<Credentials>,
    token: &Option<String>,
) -> reqwest::RequestBuilder {
    match (token, creds) {
        (Some(t), _) => req.bearer_auth(t),
        (None, Some(Credentials::Basic { username, password, .. })) => req.basic_auth(username, Some(password)),
        _ => req,
    }
}

/// The media type of a response, without parameters (`; charset=...`).
fn media_type(r: &reqwest::Response) -> Option<String> {
    header(r, "content-type").map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn protocol(image: &ImageRef, detail: String) -> ResolveError {
    ResolveError::Protocol { image: image.as_written().into(), registry: image.registry().into(), detail }
}

/// Sorts a transport error into TLS, DNS, refused, timeout or other.
fn classify(image: &ImageRef, e: &reqwest::Error, attempts: u32) -> ResolveError {
    let registry = image.registry().to_owned();
    let img = image.as_written().to_owned();
    if e.is_timeout() {
        return ResolveError::Timeout { image: img, registry, attempts };
    }
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push_str(&s.to_string());
        chain.push_str(": ");
        source = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    let detail = chain.trim_end_matches(": ").to_owned();
    if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
    {
        ResolveError::Tls { image: img, registry, detail }
    } else if lower.contains("dns")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        ResolveError::Dns { image: img, registry, detail }
    } else if lower.contains("connection refused") {
        ResolveError::Refused { image: img, registry }
    } else {
        ResolveError::Connection { image: img, registry, detail }
    }
}

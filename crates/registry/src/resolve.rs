use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hacompile_boundary::read::{human_size, limits};
use hacompile_image::{Digest, ImageRef};
use reqwest::Url;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use crate::MANIFEST_MEDIA_TYPES;
use crate::body::{self, BodyError};
use crate::credentials::{self, CredentialSource, Credentials};
use crate::token;

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
    /// `host:port` registries (and token services) reached over plain HTTP:
    /// only those named, and only they may receive credentials in clear.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust besides the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub platform: Option<Platform>,
    pub connect_timeout: Duration,
    /// The whole resolution of one image: token, manifest requests, bodies
    /// and retries. One deadline, so no slow peer can stretch it.
    pub timeout: Duration,
    /// Retries after a 429, a 5xx or a connect timeout (the first try not counted).
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
            timeout: Duration::from_secs(30),
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
    #[error("{image}: {registry} answered HTTP {status} after {attempts} attempts while {stage}")]
    Server { image: String, registry: String, status: u16, attempts: u32, stage: &'static str },
    #[error(
        "{image}: {registry} did not answer in time: still {stage} when the {} s of --timeout for the whole resolution ran out (attempt {attempts})",
        .limit.as_secs()
    )]
    Timeout { image: String, registry: String, stage: String, limit: Duration, attempts: u32 },
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
    #[error("{image}: the {what} from {registry} is larger than {limit}{why}; refusing it")]
    TooLarge { image: String, registry: String, what: &'static str, limit: String, why: &'static str },
    #[error(
        "{image}: {registry} names a token service on plain HTTP ({origin}); refusing to send credentials or take a token in clear (if that host is yours and trusted, name it: --insecure-registry {host})"
    )]
    PlainHttpRealm { image: String, registry: String, origin: String, host: String },
    #[error(
        "{image}: {registry} redirected to plain HTTP ({origin}); refusing to leave HTTPS, as the answer could be forged on the way"
    )]
    PlainHttpRedirect { image: String, registry: String, origin: String },
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

/// What a request to a registry or its token service carries.
#[derive(Clone)]
enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    /// What to send with manifest requests when the registry issues no token.
    fn without_token(creds: &Option<Credentials>) -> Auth {
        match creds {
            Some(Credentials::Basic { username, password, .. }) => {
                Auth::Basic { username: username.clone(), password: password.clone() }
            }
            _ => Auth::None,
        }
    }
}

/// How manifest requests authenticate, found once per registry and repository.
type AuthCell = Arc<OnceCell<Auth>>;

struct Inner {
    http: reqwest::Client,
    config: ResolverConfig,
    progress: Option<Arc<dyn Progress>>,
    /// One token per registry and repository (the pull scope).
    tokens: Mutex<HashMap<(String, String), AuthCell>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// What a caller may show while images resolve (a progress display). Called
/// from the resolver's tasks; every method has a default that does nothing.
pub trait Progress: Send + Sync {
    /// `count` distinct images (repository and tag) are about to resolve.
    fn queued(&self, _count: usize) {}
    /// One image's resolution ended (`ok`: a digest was found).
    fn finished(&self, _image: &str, _ok: bool) {}
    /// A registry asked to wait (429 Retry-After) or a request failed in a
    /// way worth retrying (5xx, timeout): the resolver sleeps `wait` first.
    fn waiting(&self, _image: &str, _registry: &str, _wait: Duration, _why: &str) {}
}

/// Resolves references concurrently, bounded per registry.
pub struct Resolver {
    inner: Arc<Inner>,
}

/// The host that serves a registry's API.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" { "registry-1.docker.io" } else { registry }
}

/// Why the HTTP client did not follow a redirect.
#[derive(Debug)]
enum RedirectRefused {
    /// From HTTPS to this origin on plain HTTP.
    Downgrade(String),
    TooMany,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectRefused::Downgrade(to) => write!(f, "a redirect from HTTPS to {to}"),
            RedirectRefused::TooMany => write!(f, "more than 5 redirects"),
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// At most 5 redirects, never from HTTPS down to anything else. (reqwest
/// itself drops `Authorization` when a redirect changes host, port or scheme.)
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error(RedirectRefused::TooMany);
        }
        let from_https = attempt.previous().last().is_some_and(|u| u.scheme() == "https");
        if from_https && attempt.url().scheme() != "https" {
            let to = attempt.url().origin().ascii_serialization();
            return attempt.error(RedirectRefused::Downgrade(to));
        }
        attempt.follow()
    })
}

impl Resolver {
    pub fn new(config: ResolverConfig) -> Result<Self, String> {
        // No overall request timeout here: one deadline per image covers
        // every request, body and retry (see `Inner::resolve`).
        let mut http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("hacompile/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy());
        if let Some(pem) = &config.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("the CA file is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            http = http.tls_certs_merge(certs);
        }
        let http = http.build().map_err(|e| format!("cannot set up HTTP: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                progress: None,
                tokens: Mutex::new(HashMap::new()),
                limits: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Reports each image's end and each retry wait to `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        Arc::get_mut(&mut self.inner).expect("a resolver is not shared before its first use").progress = Some(progress);
        self
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
            if let Some(p) = &self.inner.progress {
                p.queued(unique.len());
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (_, r)) in unique.iter().enumerate() {
                let inner = Arc::clone(&self.inner);
                let r = r.clone();
                tasks.spawn(async move {
                    let result = inner.resolve(&r).await;
                    if let Some(p) = &inner.progress {
                        p.finished(r.as_written(), result.is_ok());
                    }
                    (i, result)
                });
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

/// What one image's resolution is doing, for the message when its deadline passes.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Challenge,
    Token,
    Manifest,
    TagList,
}

impl Stage {
    fn doing(self) -> &'static str {
        match self {
            Stage::Challenge => "asking how to authenticate (GET /v2/)",
            Stage::Token => "fetching a token from its token service",
            Stage::Manifest => "fetching the manifest",
            Stage::TagList => "listing the repository's tags",
        }
    }
}

/// One image's resolution: its credentials, its deadline, and how far it got.
struct Op<'a> {
    image: &'a ImageRef,
    creds: Option<Credentials>,
    deadline: Instant,
    stage: Mutex<Stage>,
    attempts: AtomicU32,
}

impl Op<'_> {
    fn enter(&self, stage: Stage) {
        *self.stage.lock().expect("lock poisoned only by a panic") = stage;
        self.attempts.store(0, Ordering::SeqCst);
    }

    fn registry(&self) -> String {
        self.image.registry().to_owned()
    }

    fn doing(&self) -> &'static str {
        self.stage.lock().expect("lock poisoned only by a panic").doing()
    }

    fn name(&self) -> String {
        self.image.as_written().to_owned()
    }

    fn credential_source(&self) -> Option<CredentialSource> {
        self.creds.as_ref().map(|c| c.source().clone())
    }

    fn too_large(&self, what: &'static str, limit: u64) -> ResolveError {
        let why = if what == "manifest" { " (containerd would not pull it either)" } else { "" };
        ResolveError::TooLarge { image: self.name(), registry: self.registry(), what, limit: human_size(limit), why }
    }

    fn protocol(&self, detail: String) -> ResolveError {
        protocol(self.image, detail)
    }

    fn unauthorized(&self, status: u16) -> ResolveError {
        ResolveError::Unauthorized {
            image: self.name(),
            registry: self.registry(),
            status,
            credentials: self.credential_source(),
        }
    }

    /// A response status none of the callers expects.
    fn unexpected(&self, status: u16) -> ResolveError {
        ResolveError::Server {
            image: self.name(),
            registry: self.registry(),
            status,
            attempts: self.attempts.load(Ordering::SeqCst).max(1),
            stage: self.doing(),
        }
    }
}

enum Attempt {
    Done(reqwest::Response),
    Retry { status: Option<u16>, wait: Duration, headers: Vec<(String, String)> },
}

/// Something `request` sends: the HTTP method with the URL, and what to add.
struct Call<'a> {
    method: reqwest::Method,
    url: &'a Url,
    accept: Option<String>,
    auth: &'a Auth,
    /// A form body (the OAuth2 refresh-token grant), which is a credential.
    form: Option<String>,
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

    /// Named with `--insecure-registry`: `host:port` exactly, or the bare
    /// host for a URL that names no port.
    fn named_insecure(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let with_port = url.port_or_known_default().map(|p| format!("{host}:{p}"));
        self.config.insecure.iter().any(|h| Some(h) == with_port.as_ref() || (url.port().is_none() && h == host))
    }

    /// `host:port` as `--insecure-registry` would name it.
    fn host_port(url: &Url) -> String {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => url.origin().ascii_serialization(),
        }
    }

    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, ResolveError> {
        if image.tag().is_none() {
            return Err(ResolveError::Reference {
                image: image.as_written().into(),
                detail: "has no tag to resolve; write name:tag".into(),
            });
        }
        let permit = self.limit(image.registry()).acquire_owned().await.expect("semaphores are never closed");
        // The deadline starts once this image may send: waiting for the
        // registry's other images is not this image's slowness.
        let op = Op {
            image,
            creds: credentials::lookup(image.registry()),
            deadline: Instant::now() + self.config.timeout,
            stage: Mutex::new(Stage::Challenge),
            attempts: AtomicU32::new(0),
        };
        let result = match tokio::time::timeout_at(op.deadline, self.resolve_within(&op)).await {
            Ok(result) => result,
            Err(_) => Err(ResolveError::Timeout {
                image: op.name(),
                registry: op.registry(),
                stage: op.doing().to_owned(),
                limit: self.config.timeout,
                attempts: op.attempts.load(Ordering::SeqCst).max(1),
            }),
        };
        drop(permit);
        result
    }

    async fn resolve_within(&self, op: &Op<'_>) -> Result<Resolved, ResolveError> {
        let image = op.image;
        let auth = self.auth(op).await?;
        op.enter(Stage::Manifest);
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme(image.registry()),
            api_host(image.registry()),
            image.repository(),
            image.tag().unwrap_or("latest")
        );
        let url = Url::parse(&url).map_err(|e| op.protocol(format!("cannot form the manifest URL: {e}")))?;
        let head = self.manifest_request(op, reqwest::Method::HEAD, &url, &auth).await?;
        if body::declared_length(&head).is_some_and(|n| n > limits::REGISTRY_MANIFEST) {
            return Err(op.too_large("manifest", limits::REGISTRY_MANIFEST));
        }
        let claimed = header(&head, "docker-content-digest")
            .map(|d| Digest::parse(&d).map_err(|e| op.protocol(format!("invalid Docker-Content-Digest: {e}"))))
            .transpose()?;
        let media_type = media_type(&head);
        drop(head);
        match (claimed, &self.config.platform) {
            // A sha256 claim on HEAD is the registry's answer, as docker
            // takes it; any other algorithm is checked against the bytes.
            (Some(d), None) if d.algorithm() == "sha256" => {
                Ok(Resolved { digest: d, media_type: media_type.unwrap_or_default() })
            }
            (claimed, platform) => {
                let (digest, media_type, body) = self.fetch(op, &url, &auth, claimed).await?;
                match platform {
                    None => Ok(Resolved { digest, media_type }),
                    Some(p) => self.pick_platform(
                        image,
                        &media_type,
                        &body,
                        p,
                        Resolved { digest: digest.clone(), media_type: media_type.clone() },
                    ),
                }
            }
        }
    }

    /// How manifest requests authenticate: a bearer token when the registry
    /// challenges with one, else Basic credentials when there are some.
    async fn auth(&self, op: &Op<'_>) -> Result<Auth, ResolveError> {
        let cell = {
            let mut map = self.tokens.lock().expect("lock poisoned only by a panic");
            Arc::clone(map.entry((op.image.registry().to_owned(), op.image.repository().to_owned())).or_default())
        };
        cell.get_or_try_init(|| self.fetch_auth(op)).await.cloned()
    }

    async fn fetch_auth(&self, op: &Op<'_>) -> Result<Auth, ResolveError> {
        op.enter(Stage::Challenge);
        let registry = op.image.registry();
        let url = format!("{}://{}/v2/", self.scheme(registry), api_host(registry));
        let url = Url::parse(&url).map_err(|e| op.protocol(format!("cannot form the API URL: {e}")))?;
        let call = Call { method: reqwest::Method::GET, url: &url, accept: None, auth: &Auth::None, form: None };
        let ping = self.request(op, &call).await?;
        let challenge = (ping.status().as_u16() == 401).then(|| token::bearer_challenge(ping.headers())).flatten();
        drop(ping);
        match challenge {
            Some(challenge) => self.fetch_token(op, &challenge).await.map(Auth::Bearer),
            None => Ok(Auth::without_token(&op.creds)),
        }
    }

    /// Asks the realm for a pull token, with the credentials if there are some.
    async fn fetch_token(&self, op: &Op<'_>, challenge: &token::Challenge) -> Result<String, ResolveError> {
        op.enter(Stage::Token);
        let realm = Url::parse(&challenge.realm).map_err(|e| {
            op.protocol(format!(
                "its token realm `{}` is not a URL: {e}",
                hacompile_boundary::text::line(&challenge.realm)
            ))
        })?;
        match realm.scheme() {
            "https" => {}
            "http" if self.named_insecure(&realm) => {}
            "http" => {
                return Err(ResolveError::PlainHttpRealm {
                    image: op.name(),
                    registry: op.registry(),
                    origin: realm.origin().ascii_serialization(),
                    host: Self::host_port(&realm),
                });
            }
            other => {
                return Err(
                    op.protocol(format!("its token realm uses `{}`, not https", hacompile_boundary::text::line(other)))
                );
            }
        }
        let scope = format!("repository:{}:pull", op.image.repository());
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = &challenge.service {
            pairs.push(("service", service));
        }
        pairs.push(("scope", &scope));
        let (call_auth, form) = match &op.creds {
            // Docker's OAuth2 grant: the identity token is a refresh token.
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut grant = vec![("grant_type", "refresh_token"), ("client_id", "hacompile")];
                grant.extend_from_slice(&pairs);
                grant.push(("refresh_token", token));
                (Auth::None, Some(token::form(&grant)))
            }
            creds => (Auth::without_token(creds), None),
        };
        let mut url = realm.clone();
        if form.is_none() {
            url.query_pairs_mut().extend_pairs(&pairs);
        }
        let method = if form.is_some() { reqwest::Method::POST } else { reqwest::Method::GET };
        let call = Call { method, url: &url, accept: None, auth: &call_auth, form };
        let response = self.request(op, &call).await?;
        match response.status().as_u16() {
            200..=299 => {}
            status @ (401 | 403) => return Err(op.unauthorized(status)),
            status => return Err(op.unexpected(status)),
        }
        let body = body::read_limited(response, limits::REGISTRY_TOKEN)
            .await
            .map_err(|e| self.body_error(op, e, "token response", limits::REGISTRY_TOKEN))?;
        token::token_from(&body).ok_or_else(|| op.protocol("its token service answered no usable token".into()))
    }

    /// A manifest HEAD or GET, its status turned into an error where it is one.
    async fn manifest_request(
        &self,
        op: &Op<'_>,
        method: reqwest::Method,
        url: &Url,
        auth: &Auth,
    ) -> Result<reqwest::Response, ResolveError> {
        let call = Call { method, url, accept: Some(MANIFEST_MEDIA_TYPES.join(", ")), auth, form: None };
        let response = self.request(op, &call).await?;
        match response.status().as_u16() {
            200..=299 => Ok(response),
            status @ (401 | 403) => Err(op.unauthorized(status)),
            // A missing repository and a missing tag both 404; the tag list tells them apart.
            404 => Err(self.not_found(op, url, auth).await),
            status => Err(op.unexpected(status)),
        }
    }

    /// After a manifest 404, tells a missing repository from a missing tag:
    /// registries answer MANIFEST_UNKNOWN for both on the manifest endpoint,
    /// but the tag list of a missing repository is NAME_UNKNOWN.
    async fn not_found(&self, op: &Op<'_>, manifest_url: &Url, auth: &Auth) -> ResolveError {
        op.enter(Stage::TagList);
        let image = op.image;
        let mut url = manifest_url.clone();
        if let Some((base, _)) = manifest_url.path().rsplit_once("/manifests/") {
            url.set_path(&format!("{base}/tags/list"));
            url.set_query(Some("n=1"));
        }
        let call = Call { method: reqwest::Method::GET, url: &url, accept: None, auth, form: None };
        let codes: Vec<String> = match self.request(op, &call).await {
            Ok(r) => match body::read_limited(r, limits::REGISTRY_SMALL).await {
                Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| {
                        v["errors"]
                            .as_array()
                            .map(|e| e.iter().filter_map(|x| x["code"].as_str().map(str::to_owned)).collect())
                    })
                    .unwrap_or_default(),
                Err(BodyError::TooLarge) => return op.too_large("tag list", limits::REGISTRY_SMALL),
                Err(BodyError::Transport(_)) => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        let what = if codes.iter().any(|c| c == "NAME_UNKNOWN") {
            format!("repository `{}`", image.repository())
        } else {
            format!("tag `{}` in repository `{}`", image.tag().unwrap_or(""), image.repository())
        };
        ResolveError::NotFound { image: op.name(), registry: op.registry(), what }
    }

    /// GETs a manifest and checks that its bytes hash to every digest
    /// claimed for it (on HEAD and on GET), in the claim's own algorithm.
    async fn fetch(
        &self,
        op: &Op<'_>,
        url: &Url,
        auth: &Auth,
        head_claim: Option<Digest>,
    ) -> Result<(Digest, String, Vec<u8>), ResolveError> {
        let response = self.manifest_request(op, reqwest::Method::GET, url, auth).await?;
        let get_claim = header(&response, "docker-content-digest")
            .map(|d| Digest::parse(&d).map_err(|e| op.protocol(format!("invalid Docker-Content-Digest: {e}"))))
            .transpose()?;
        let media_type = media_type(&response).unwrap_or_default();
        let body = body::read_limited(response, limits::REGISTRY_MANIFEST)
            .await
            .map_err(|e| self.body_error(op, e, "manifest", limits::REGISTRY_MANIFEST))?;
        for claimed in [&head_claim, &get_claim].into_iter().flatten() {
            let computed = hash(claimed.algorithm(), &body);
            if computed != claimed.to_string() {
                return Err(ResolveError::DigestMismatch {
                    image: op.name(),
                    registry: op.registry(),
                    claimed: claimed.to_string(),
                    computed,
                });
            }
        }
        let digest = match get_claim.or(head_claim) {
            Some(verified) => verified,
            None => Digest::parse(&hash("sha256", &body)).expect("a sha256 we formatted is valid"),
        };
        Ok((digest, media_type, body))
    }

    fn body_error(&self, op: &Op<'_>, e: BodyError, what: &'static str, limit: u64) -> ResolveError {
        match e {
            BodyError::TooLarge => op.too_large(what, limit),
            BodyError::Transport(e) => classify(op, &e, op.attempts.load(Ordering::SeqCst).max(1), self.config.timeout),
        }
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

    /// Credentials go only over HTTPS, or to a host named insecure.
    fn authorize(&self, op: &Op<'_>, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ResolveError> {
        let secret = !matches!(call.auth, Auth::None) || call.form.is_some();
        if secret && call.url.scheme() != "https" && !self.named_insecure(call.url) {
            return Err(op.protocol(format!(
                "refusing to send credentials over plain HTTP to {} (not named with --insecure-registry)",
                call.url.origin().ascii_serialization()
            )));
        }
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        if let Some(accept) = &call.accept {
            req = req.header(reqwest::header::ACCEPT, accept);
        }
        req = match call.auth {
            Auth::None => req,
            Auth::Basic { username, password } => req.basic_auth(username, Some(password)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        if let Some(form) = &call.form {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(form.clone());
        }
        Ok(req)
    }

    /// One request with bounded retries within the image's deadline: 429
    /// honours Retry-After (up to a cap), 5xx and connect timeouts back off
    /// exponentially. Any other status is the caller's to judge.
    async fn request(&self, op: &Op<'_>, call: &Call<'_>) -> Result<reqwest::Response, ResolveError> {
        let mut backoff = self.config.backoff;
        loop {
            let attempts = op.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let outcome = match self.authorize(op, call)?.send().await {
                Err(e) if e.is_timeout() => Attempt::Retry { status: None, wait: backoff, headers: Vec::new() },
                Err(e) => return Err(self.transport_error(op, &e, attempts)),
                Ok(r) => judge(r, backoff),
            };
            let Attempt::Retry { status, wait, headers } = outcome else {
                let Attempt::Done(r) = outcome else { unreachable!("matched above") };
                return Ok(r);
            };
            let (image, registry) = (op.name(), op.registry());
            // A wait that would outlast the deadline is not waited for:
            // the registry's own answer says more than a timeout would.
            let past_deadline = Instant::now() + wait >= op.deadline;
            if attempts > self.config.max_retries || wait > self.config.max_retry_after || past_deadline {
                return Err(match status {
                    Some(429) => ResolveError::RateLimited { image, registry, attempts, headers },
                    Some(code) => ResolveError::Server { image, registry, status: code, attempts, stage: op.doing() },
                    None => ResolveError::Timeout {
                        image,
                        registry,
                        stage: op.doing().to_owned(),
                        limit: self.config.timeout,
                        attempts,
                    },
                });
            }
            if let Some(p) = &self.progress {
                let why = match status {
                    Some(429) => "rate limited (429)".to_owned(),
                    Some(code) => format!("server error {code}"),
                    None => "timed out".to_owned(),
                };
                p.waiting(&image, &registry, wait, &why);
            }
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    /// A refused redirect, or a transport error sorted by [`classify`].
    fn transport_error(&self, op: &Op<'_>, e: &reqwest::Error, attempts: u32) -> ResolveError {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            match s.downcast_ref::<RedirectRefused>() {
                Some(RedirectRefused::Downgrade(origin)) => {
                    return ResolveError::PlainHttpRedirect {
                        image: op.name(),
                        registry: op.registry(),
                        origin: origin.clone(),
                    };
                }
                Some(RedirectRefused::TooMany) => return op.protocol("it redirected more than 5 times".into()),
                None => source = s.source(),
            }
        }
        classify(op, e, attempts, self.config.timeout)
    }
}

/// Sorts a response: success and errors go back to the caller, 429 and 5xx are retried.
fn judge(r: reqwest::Response, backoff: Duration) -> Attempt {
    match r.status().as_u16() {
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
        status @ 500..=599 => Attempt::Retry { status: Some(status), wait: backoff, headers: Vec::new() },
        _ => Attempt::Done(r),
    }
}

/// `algorithm:hex` of `bytes`, for sha256, sha384 or sha512 (what [`Digest`] accepts).
fn hash(algorithm: &str, bytes: &[u8]) -> String {
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match algorithm {
        "sha384" => format!("sha384:{}", hex(&Sha384::digest(bytes))),
        "sha512" => format!("sha512:{}", hex(&Sha512::digest(bytes))),
        _ => format!("sha256:{}", hex(&Sha256::digest(bytes))),
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
fn classify(op: &Op<'_>, e: &reqwest::Error, attempts: u32, limit: Duration) -> ResolveError {
    let registry = op.registry();
    let img = op.name();
    if e.is_timeout() {
        let stage = op.doing().to_owned();
        return ResolveError::Timeout { image: img, registry, stage, limit, attempts };
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

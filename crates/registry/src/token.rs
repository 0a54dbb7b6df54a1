//! The registry token flow (the Docker token specification), on the
//! resolver's own HTTP client so that the resolver's bounds hold for it too:
//! the realm named by a `Bearer` challenge is asked for a `pull` token with
//! `GET realm?service=..&scope=repository:NAME:pull` (Basic credentials when
//! there are some), or with the OAuth2 `refresh_token` POST for an identity
//! token; the answer is JSON with `token` or `access_token`.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// A `Bearer` challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub service: Option<String>,
}

/// The first `Bearer` challenge with a realm, if the registry sent one.
pub(crate) fn bearer_challenge(headers: &HeaderMap) -> Option<Challenge> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        // The parser stops at the first malformed challenge; earlier ones count.
        for c in http_auth::ChallengeParser::new(text).map_while(Result::ok) {
            if !c.scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            let param =
                |name: &str| c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
            if let Some(realm) = param("realm") {
                return Some(Challenge { realm, service: param("service") });
            }
        }
    }
    None
}

/// The token in a token service's JSON answer (`token`, or OAuth2's
/// `access_token`), if it can go into an `Authorization` header.
pub(crate) fn token_from(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let usable = |t: &&str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
    v["token"].as_str().filter(usable).or_else(|| v["access_token"].as_str().filter(usable)).map(str::to_owned)
}

/// `application/x-www-form-urlencoded` pairs.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a constant URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn challenges_and_token_answers() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="x""#));
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/postgres:pull""#,
            ),
        );
        assert_eq!(
            bearer_challenge(&h),
            Some(Challenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        let mut basic = HeaderMap::new();
        basic.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="hacompile-test""#));
        assert_eq!(bearer_challenge(&basic), None);

        assert_eq!(token_from(br#"{"token":"abc","expires_in":300}"#).as_deref(), Some("abc"));
        assert_eq!(token_from(br#"{"access_token":"xyz"}"#).as_deref(), Some("xyz"));
        assert_eq!(token_from(br#"{"token":""}"#), None);
        assert_eq!(token_from(b"{\"token\":\"a\\nb\"}"), None, "no header injection");
        assert_eq!(token_from(b"not json"), None);
        assert_eq!(form(&[("scope", "repository:a/b:pull"), ("x", "1 2")]), "scope=repository%3Aa%2Fb%3Apull&x=1+2");
    }
}

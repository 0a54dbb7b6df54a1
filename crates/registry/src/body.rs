//! The one bounded reader for every HTTP body the resolver reads: a body
//! larger than its limit is refused by its `Content-Length` before a byte is
//! read, or, without one, as soon as the chunks read pass the limit, so a
//! hostile registry costs at most `limit` bytes of memory per request.

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The declared `Content-Length`, when there is a valid one.
pub(crate) fn declared_length(r: &reqwest::Response) -> Option<u64> {
    r.headers().get(reqwest::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads the body of `r`, at most `limit` bytes.
pub(crate) async fn read_limited(mut r: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    let declared = declared_length(&r);
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = r.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

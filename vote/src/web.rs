//! HTTP: the page, the form post and the JSON API, and their bad-input rules.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use common::{Choice, VoterId};

use crate::identity::{self, CookieKey, Decision, LegacyLookup};
use serde::Deserialize;

use crate::cookies;
use crate::metrics::VoteMetrics;
use crate::origin::{self, Origin};
use crate::page::{self, Notice};
use crate::recorder::{RecordError, Recorder};

/// Largest request body accepted: a ballot is a few bytes, so anything
/// bigger is a mistake or an attack, answered 413 before it is read whole.
pub const MAX_BODY_BYTES: usize = 4096;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Signs and checks voter ids.
    pub key: CookieKey,
    pub labels: [String; 2],
    pub host: String,
    pub recorder: Recorder,
    pub metrics: VoteMetrics,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(show_page).post(vote_form))
        .route("/api/vote", post(vote_api))
        .route("/limited", any(limited))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Why a vote request was refused. Internal causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("the vote must be \"a\" or \"b\"")]
    UnknownOption,
    #[error("request body too large (limit {MAX_BODY_BYTES} bytes)")]
    TooLarge,
    #[error("send the ballot as {0}")]
    UnsupportedMediaType(&'static str),
    #[error("Your vote was NOT recorded: it was sent from another site. Open the vote page itself and vote there.")]
    CrossSite,
    #[error("Your vote was NOT recorded: your voter cookie was not issued by this site. Reload the page and vote again.")]
    ForgedVoter,
    #[error("Your vote was NOT recorded: the vote service cannot store votes right now. Please try again.")]
    Unavailable(#[source] RecordError),
}

impl VoteError {
    fn status(&self) -> StatusCode {
        match self {
            VoteError::BadRequest(_) | VoteError::UnknownOption => StatusCode::BAD_REQUEST,
            VoteError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            VoteError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            VoteError::CrossSite | VoteError::ForgedVoter => StatusCode::FORBIDDEN,
            VoteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            VoteError::BadRequest(_) => "bad_request",
            VoteError::UnknownOption => "unknown_option",
            VoteError::TooLarge => "too_large",
            VoteError::UnsupportedMediaType(_) => "unsupported_media_type",
            VoteError::CrossSite => "cross_site",
            VoteError::ForgedVoter => "forged_voter",
            VoteError::Unavailable(e) => e.label(),
        }
    }
}

/// The voter behind a request: their cookie's id, or a fresh one to set.
struct Voter {
    id: VoterId,
    is_new: bool,
    secure: bool,
}

impl Voter {
    fn new(id: Option<VoterId>, headers: &HeaderMap) -> Voter {
        let secure = cookies::is_https(headers);
        match id {
            Some(id) => Voter {
                id,
                is_new: false,
                secure,
            },
            None => Voter {
                id: VoterId::generate(),
                is_new: true,
                secure,
            },
        }
    }

    /// For showing the page: a signed or legacy id is kept as it is (the
    /// legacy one is re-signed when its holder votes); anything else gets
    /// a fresh id.
    fn for_page(app: &AppState, headers: &HeaderMap) -> Voter {
        let id = match app.key.read(cookies::voter_cookie(headers)) {
            identity::Cookie::Signed(id) | identity::Cookie::Legacy(id) => Some(id),
            identity::Cookie::Absent | identity::Cookie::Forged => None,
        };
        Voter::new(id, headers)
    }

    /// For a vote: [`identity::decide`], asking Redis only about a legacy id.
    async fn for_vote(app: &AppState, headers: &HeaderMap) -> Result<Voter, VoteError> {
        let cookie = app.key.read(cookies::voter_cookie(headers));
        let lookup = match &cookie {
            identity::Cookie::Legacy(id) => app
                .recorder
                .legacy_voter(id)
                .await
                .map_err(VoteError::Unavailable)?,
            _ => LegacyLookup::Unknown,
        };
        match identity::decide(&cookie, || lookup) {
            Decision::Voter(id) => Ok(Voter::new(Some(id), headers)),
            Decision::New => Ok(Voter::new(None, headers)),
            Decision::Refuse => Err(VoteError::ForgedVoter),
            Decision::NotYet => Err(VoteError::Unavailable(RecordError::LegacyNotLoaded)),
        }
    }

    fn cookie(&self, key: &CookieKey) -> String {
        cookies::set_voter_id(&key.sign(&self.id), self.secure)
    }
}

/// Headers every page gets: personal content must not be cached, and the
/// page needs nothing from anywhere else.
fn page_headers() -> [(header::HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        ),
    ]
}

fn with_cookie(mut response: Response, cookie: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn show_page(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let voter = Voter::for_page(&app, &headers);
    let current = if voter.is_new {
        None
    } else {
        cookies::last_vote(&headers)
    };
    let html = page::render(&app.labels, current, &app.host, Notice::None);
    let response = (page_headers(), html).into_response();
    if voter.is_new {
        with_cookie(response, voter.cookie(&app.key))
    } else {
        response
    }
}

fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, VoteError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            VoteError::TooLarge
        } else {
            VoteError::BadRequest("the request body could not be read")
        }
    })
}

/// Parses `vote=a` from a form body: exactly one `vote` field; other fields
/// (a browser may add some) are ignored.
pub fn parse_form(body: &[u8]) -> Result<Choice, VoteError> {
    let mut votes = form_urlencoded::parse(body).filter(|(k, _)| k == "vote");
    let value = votes
        .next()
        .ok_or(VoteError::BadRequest("the form has no \"vote\" field"))?;
    if votes.next().is_some() {
        return Err(VoteError::BadRequest(
            "the form has more than one \"vote\" field",
        ));
    }
    Choice::parse(&value.1).ok_or(VoteError::UnknownOption)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ballot {
    vote: String,
}

pub fn parse_json(body: &[u8]) -> Result<Choice, VoteError> {
    let ballot: Ballot = serde_json::from_slice(body)
        .map_err(|_| VoteError::BadRequest("the body must be JSON like {\"vote\":\"a\"}"))?;
    Choice::parse(&ballot.vote).ok_or(VoteError::UnknownOption)
}

/// Validates, records and counts one vote; shared by the form and the API.
async fn accept(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    media_type: &'static str,
    parse: fn(&[u8]) -> Result<Choice, VoteError>,
) -> Result<(Voter, Choice), VoteError> {
    let outcome = async {
        // First: a forged request must not even learn whether its ballot was well formed.
        if origin::check(headers) == Origin::CrossSite {
            return Err(VoteError::CrossSite);
        }
        if !has_content_type(headers, media_type) {
            return Err(VoteError::UnsupportedMediaType(media_type));
        }
        let choice = parse(&read_body(body)?)?;
        let voter = Voter::for_vote(app, headers).await?;
        app.recorder
            .record(&voter.id, choice)
            .await
            .map_err(VoteError::Unavailable)?;
        Ok((voter, choice))
    }
    .await;
    match &outcome {
        Ok((_, choice)) => app
            .metrics
            .accepted
            .with_label_values(&[choice.as_str()])
            .inc(),
        Err(e) => {
            app.metrics.rejected.with_label_values(&[e.label()]).inc();
            match e {
                VoteError::Unavailable(cause) => {
                    tracing::warn!(error = %cause, source = ?std::error::Error::source(cause), "vote not recorded");
                }
                _ => tracing::debug!(error = %e, "bad vote request"),
            }
        }
    }
    outcome
}

fn cookies_for(app: &AppState, voter: &Voter, choice: Choice, response: Response) -> Response {
    let response = with_cookie(response, cookies::set_last_vote(choice, voter.secure));
    // Refreshing the id cookie on each vote keeps an active voter's id
    // alive, and signs a legacy one.
    with_cookie(response, voter.cookie(&app.key))
}

/// `POST /` from the page's form: redirect back to the page on success, so
/// a reload does not post again; on failure, the page with the reason.
async fn vote_form(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match accept(
        &app,
        &headers,
        body,
        "application/x-www-form-urlencoded",
        parse_form,
    )
    .await
    {
        Ok((voter, choice)) => {
            let redirect = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            cookies_for(&app, &voter, choice, redirect)
        }
        Err(e) => {
            let current = cookies::last_vote(&headers);
            let message = e.to_string();
            let html = page::render(&app.labels, current, &app.host, Notice::Error(&message));
            (e.status(), page_headers(), html).into_response()
        }
    }
}

/// What Traefik shows a client over its per-address limits (its `errors`
/// middleware fetches this page and answers with it, status 429). Not
/// routed from outside. The answer matches what the client sent: JSON to
/// the API's clients, the page to browsers.
async fn limited(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    const MESSAGE: &str = "Your vote was NOT recorded: too many requests came from your network address. Wait a few seconds and try again.";
    if has_content_type(&headers, "application/json") {
        let body = Json(serde_json::json!({"recorded": false, "error": MESSAGE}));
        return (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    }
    let current = cookies::last_vote(&headers);
    let html = page::render(&app.labels, current, &app.host, Notice::Error(MESSAGE));
    (StatusCode::TOO_MANY_REQUESTS, page_headers(), html).into_response()
}

/// `POST /api/vote` with `{"vote":"a"}`: answers `{"recorded":true,"vote":"a"}`.
async fn vote_api(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match accept(&app, &headers, body, "application/json", parse_json).await {
        Ok((voter, choice)) => {
            let body = Json(serde_json::json!({"recorded": true, "vote": choice.as_str()}));
            cookies_for(&app, &voter, choice, body.into_response())
        }
        Err(e) => {
            let body = Json(serde_json::json!({"recorded": false, "error": e.to_string()}));
            (e.status(), body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parsing_is_strict_about_the_vote() {
        assert_eq!(parse_form(b"vote=a").ok(), Some(Choice::A));
        assert_eq!(parse_form(b"submit=1&vote=b").ok(), Some(Choice::B));
        for bad in [
            &b""[..],
            b"vote=",
            b"vote=c",
            b"vote=a&vote=b",
            b"vote=%FF",
            b"vote=A",
        ] {
            assert!(
                parse_form(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_parsing_rejects_anything_but_a_ballot() {
        assert_eq!(parse_json(br#"{"vote":"b"}"#).ok(), Some(Choice::B));
        for bad in [
            &br#"{"vote":"c"}"#[..],
            br#"{"vote":1}"#,
            br#"{"vote":"a","x":1}"#,
            b"[]",
            b"nul",
        ] {
            assert!(
                parse_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! The vote service against a real redis-server: what it acknowledges is in
//! the stream, and what it refuses is not.

use std::time::Duration;

use common::queue;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use testkit::service::{env, spawn, Running};
use testkit::RedisServer;

async fn start_vote(redis: &RedisServer, extra: &[(&str, &str)]) -> Running {
    let port = redis.port.to_string();
    let mut pairs = vec![
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", port.as_str()),
        ("OPTION_A", "گندم"),
        ("OPTION_B", "عمو"),
    ];
    pairs.extend_from_slice(extra);
    let mut env = env(&pairs);
    let config = vote::Config::from_env(&mut env);
    env.finish().expect("valid test configuration");
    spawn(|listener, shutdown| vote::run(config, listener, shutdown)).await
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn queued(redis: &RedisServer) -> Vec<(String, String)> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis
        .query(redis::cmd("XRANGE").arg(queue::STREAM).arg("-").arg("+"))
        .unwrap_or_default();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get(queue::FIELD_VOTER), get(queue::FIELD_VOTE))
        })
        .collect()
}

fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The cookie's value (`<id>.<mac>`) from a Set-Cookie header.
fn voter_of(set_cookie: &str) -> String {
    set_cookie
        .trim_start_matches("voter_id=")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The id in a cookie value: what the queue carries.
fn id_of(value: &str) -> String {
    value.split('.').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn page_shows_labels_in_any_script_and_issues_a_voter_cookie() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let response = client().get(vote.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_value(&response, "voter_id").expect("a voter cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let value = voter_of(&cookie);
    assert_eq!(value.len(), 65, "a 128-bit id and MAC in hex: {cookie}");
    assert!(value
        .split_once('.')
        .is_some_and(|(id, mac)| id.len() == 32 && mac.len() == 32));
    let html = response.text().await.expect("body");
    assert!(html.contains("گندم") && html.contains("عمو"));
    assert!(
        html.contains("<form method=\"post\" action=\"/\">"),
        "works without JavaScript"
    );
    assert!(html.contains("name=\"viewport\""), "laid out for phones");
    assert!(html.contains(&common::html::hostname()));
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn api_vote_is_queued_for_the_cookie_voter_and_can_change() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let http = client();
    let first = http
        .post(vote.url("/api/vote"))
        .json(&serde_json::json!({"vote": "a"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(first.status(), StatusCode::OK);
    let voter = voter_of(&cookie_value(&first, "voter_id").expect("voter cookie"));
    let body: serde_json::Value = first.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"recorded": true, "vote": "a"}));

    let second = http
        .post(vote.url("/api/vote"))
        .header(COOKIE, format!("voter_id={voter}"))
        .header("x-forwarded-proto", "https")
        .json(&serde_json::json!({"vote": "b"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(second.status(), StatusCode::OK);
    let cookie = cookie_value(&second, "voter_id").expect("refreshed cookie");
    assert_eq!(voter_of(&cookie), voter, "same voter keeps their id");
    assert!(
        cookie.contains("; Secure"),
        "HTTPS behind the proxy: {cookie}"
    );
    let id = id_of(&voter);
    assert_eq!(
        queued(&redis),
        vec![(id.clone(), "a".into()), (id, "b".into())]
    );
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn form_vote_redirects_and_the_page_shows_the_choice() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let http = client();
    let response = http
        .post(vote.url("/"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("vote=b")
        .send()
        .await
        .expect("POST /");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    let voter = voter_of(&cookie_value(&response, "voter_id").expect("voter cookie"));
    let last = cookie_value(&response, "last_vote").expect("last vote cookie");
    let page = http
        .get(vote.url("/"))
        .header(
            COOKIE,
            format!(
                "voter_id={voter}; {}",
                last.split(';').next().unwrap_or_default()
            ),
        )
        .send()
        .await
        .expect("GET /");
    assert!(
        cookie_value(&page, "voter_id").is_none(),
        "a known voter keeps the id"
    );
    let html = page.text().await.expect("body");
    assert!(html.contains("Your vote: <strong>عمو</strong>"), "{html}");
    assert_eq!(queued(&redis), vec![(id_of(&voter), "b".into())]);
    vote.stop().await.expect("clean stop");
}

/// Another site's form (or script) cannot vote for its visitors, nor hand
/// them a new identity; this site's own page, and clients that are not
/// browsers, still vote.
#[tokio::test]
async fn cross_site_posts_are_refused_and_same_site_ones_counted() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    // The page's own origin: http://127.0.0.1:PORT
    let own = vote.url("/").trim_end_matches('/').to_owned();
    let forged: [&[(&str, &str)]; 5] = [
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "cross-site"), ("origin", own.as_str())],
    ];
    for headers in forged {
        for (path, content_type, body) in [
            ("/", "application/x-www-form-urlencoded", "vote=a"),
            ("/api/vote", "application/json", r#"{"vote":"a"}"#),
        ] {
            let mut request = client()
                .post(vote.url(path))
                .header(CONTENT_TYPE, content_type)
                .body(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("POST");
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} {headers:?}"
            );
            assert!(
                cookie_value(&response, "voter_id").is_none(),
                "no identity is handed out: {path} {headers:?}"
            );
            let text = response.text().await.expect("body");
            assert!(text.contains("sent from another site"), "{text}");
        }
    }
    assert!(queued(&redis).is_empty(), "no forged vote is queued");
    for headers in [
        vec![("origin", own.clone())],
        vec![("sec-fetch-site", "same-origin".to_owned())],
        vec![],
    ] {
        let mut request = client()
            .post(vote.url("/"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("vote=b");
        for (name, value) in &headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.expect("POST /");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{headers:?}");
    }
    assert_eq!(queued(&redis).len(), 3);
    vote.stop().await.expect("clean stop");
}

/// The page Traefik shows a client over its limits: JSON to the API's
/// clients, the vote page with the reason to browsers; both 429.
#[tokio::test]
async fn the_limit_page_speaks_the_clients_language() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let json = client()
        .get(vote.url("/limited"))
        .header(CONTENT_TYPE, "application/json")
        .send()
        .await
        .expect("GET /limited");
    assert_eq!(json.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = json.json().await.expect("JSON");
    assert_eq!(body["recorded"], false);
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("too many requests"));
    let page = client()
        .post(vote.url("/limited"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("vote=a")
        .send()
        .await
        .expect("POST /limited");
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    let html = page.text().await.expect("body");
    assert!(
        html.contains("role=\"alert\">Your vote was NOT recorded: too many requests"),
        "{html}"
    );
    assert!(queued(&redis).is_empty());
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn malformed_or_hostile_cookies_get_a_fresh_voter_id() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let huge = "f".repeat(8000);
    for bad in [
        "voter_id=",
        "voter_id=not-hex",
        "voter_id=../../etc/passwd",
        &format!("voter_id={huge}"),
        "voter_id=ABCDEF0123456789ABCDEF0123456789",
    ] {
        let response = client()
            .post(vote.url("/api/vote"))
            .header(COOKIE, bad)
            .json(&serde_json::json!({"vote": "a"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK, "{bad:.40}");
        let fresh = id_of(&voter_of(
            &cookie_value(&response, "voter_id").expect("fresh id"),
        ));
        assert_eq!(fresh.len(), 32);
        assert!(!bad.contains(&fresh));
    }
    let voters: std::collections::HashSet<_> = queued(&redis).into_iter().map(|(v, _)| v).collect();
    assert_eq!(
        voters.len(),
        5,
        "each malformed cookie became its own fresh voter"
    );
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_status_and_nothing_is_queued() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let http = client();
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    let big = format!("vote=a&pad={}", "x".repeat(5000));
    let big_json = format!(r#"{{"vote":"a","pad":"{}"}}"#, "x".repeat(5000));
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "/",
            Some(form),
            "vote=c".into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "/",
            Some(form),
            "vote=A".into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "/",
            Some(form),
            "vote=".into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "/",
            Some(form),
            "".into(),
            StatusCode::BAD_REQUEST,
            "no &quot;vote&quot; field",
        ),
        (
            "/",
            Some(form),
            "vote=a&vote=b".into(),
            StatusCode::BAD_REQUEST,
            "more than one",
        ),
        (
            "/",
            Some(form),
            "vote=%00".into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "/",
            Some(form),
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
        (
            "/",
            Some("text/plain"),
            "vote=a".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the ballot as",
        ),
        (
            "/",
            None,
            "vote=a".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the ballot as",
        ),
        (
            "/api/vote",
            Some(json),
            r#"{"vote":"c"}"#.into(),
            StatusCode::BAD_REQUEST,
            "must be",
        ),
        (
            "/api/vote",
            Some(json),
            r#"{"vote":"a","extra":1}"#.into(),
            StatusCode::BAD_REQUEST,
            "JSON like",
        ),
        (
            "/api/vote",
            Some(json),
            r#"{"vote":["a"]}"#.into(),
            StatusCode::BAD_REQUEST,
            "JSON like",
        ),
        (
            "/api/vote",
            Some(json),
            "{".into(),
            StatusCode::BAD_REQUEST,
            "JSON like",
        ),
        (
            "/api/vote",
            Some(json),
            "\u{feff}<script>".into(),
            StatusCode::BAD_REQUEST,
            "JSON like",
        ),
        (
            "/api/vote",
            Some(json),
            big_json,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
        (
            "/api/vote",
            Some(form),
            "vote=a".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "/api/vote",
            Some("application/jsonx"),
            r#"{"vote":"a"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
    ];
    for (path, content_type, body, status, message) in cases {
        let mut request = http.post(vote.url(path)).body(body.clone());
        if let Some(ct) = content_type {
            request = request.header(CONTENT_TYPE, ct);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(
            response.status(),
            status,
            "{path} {content_type:?} {body:.40}"
        );
        let text = response.text().await.expect("body");
        assert!(text.contains(message), "{path} {body:.40}: {text:.300}");
        assert!(text.len() < 10_000, "short answer");
        if path == "/api/vote" {
            let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON error");
            assert_eq!(parsed["recorded"], false);
        }
    }
    // A body that claims to be small but is not, streamed without a length.
    let chunks =
        futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 100])));
    let response = http
        .post(vote.url("/api/vote"))
        .header(CONTENT_TYPE, json)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        http.get(vote.url("/api/vote"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        http.get(vote.url("/nope"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        queued(&redis).is_empty(),
        "nothing was queued: {:?}",
        queued(&redis)
    );
    let metrics = http
        .get(vote.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("swarmvote_vote_votes_rejected_total{reason=\"unknown_option\"}"),
        "{metrics}"
    );
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn with_min_replicas_and_no_replica_nothing_is_claimed() {
    let redis = RedisServer::start();
    let vote = start_vote(
        &redis,
        &[("VOTE_MIN_REPLICAS", "1"), ("VOTE_WAIT_TIMEOUT_MS", "200")],
    )
    .await;
    let response = client()
        .post(vote.url("/api/vote"))
        .json(&serde_json::json!({"vote": "a"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        cookie_value(&response, "last_vote").is_none(),
        "no choice is claimed"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["recorded"], false);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("NOT recorded"),
        "{body}"
    );

    let form = client()
        .post(vote.url("/"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("vote=b")
        .send()
        .await
        .expect("POST /");
    assert_eq!(form.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(form.text().await.expect("page").contains("NOT recorded"));
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn with_a_replica_concurrent_votes_share_their_wait() {
    let redis = RedisServer::start();
    let _replica = RedisServer::start_replica_of(&redis);
    let vote = start_vote(&redis, &[("VOTE_MIN_REPLICAS", "1")]).await;
    let http = client();
    let votes = 400;
    let requests = (0..votes).map(|i| {
        let http = http.clone();
        let url = vote.url("/api/vote");
        async move {
            let choice = if i % 3 == 0 { "b" } else { "a" };
            http.post(url)
                .json(&serde_json::json!({"vote": choice}))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(StatusCode::OK))),
        "{statuses:?}"
    );
    assert_eq!(queued(&redis).len(), votes);
    let metrics = http
        .get(vote.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let waits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("swarmvote_vote_wait_batch_size_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wait count metric");
    assert!(
        waits >= 1.0 && waits < votes as f64,
        "{votes} votes took {waits} WAITs"
    );
    vote.stop().await.expect("clean stop");
}

#[tokio::test]
async fn redis_outage_answers_503_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let http = client();
    let post = || {
        http.post(vote.url("/api/vote"))
            .json(&serde_json::json!({"vote": "a"}))
            .send()
    };
    assert_eq!(post().await.expect("POST").status(), StatusCode::OK);
    assert_eq!(
        http.get(vote.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        StatusCode::OK
    );
    testkit::eventually(Duration::from_secs(10), "ready", || async {
        let s = http.get(vote.url("/readyz")).send().await.ok()?.status();
        (s == StatusCode::OK).then_some(())
    })
    .await;
    redis.stop();
    assert_eq!(
        post().await.expect("POST").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    testkit::eventually(Duration::from_secs(10), "not ready", || async {
        let s = http.get(vote.url("/readyz")).send().await.ok()?.status();
        (s == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    redis.restart();
    testkit::eventually(Duration::from_secs(10), "votes accepted again", || async {
        (post().await.ok()?.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        queued(&redis).len(),
        2,
        "the acknowledged votes survived the restart"
    );
    vote.stop().await.expect("clean stop");
}

async fn vote_as(vote: &Running, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(vote.url("/api/vote"))
        .json(&serde_json::json!({"vote": "a"}));
    if let Some(value) = cookie {
        request = request.header(COOKIE, format!("voter_id={value}"));
    }
    request.send().await.expect("POST /api/vote")
}

/// Ids are ours only: every replica with the key accepts an id another
/// minted; an id signed with another key, or made up in our shape, is
/// refused (403) and queues nothing.
#[tokio::test]
async fn only_ids_signed_with_our_key_are_accepted() {
    let redis = RedisServer::start();
    let key = [("VOTE_COOKIE_KEY", "0123456789abcdef-our-key")];
    let one = start_vote(&redis, &key).await;
    let two = start_vote(&redis, &key).await;
    let other = start_vote(&redis, &[("VOTE_COOKIE_KEY", "0123456789abcdef-not-ours")]).await;
    let minted = vote_as(&one, None).await;
    let value = voter_of(&cookie_value(&minted, "voter_id").expect("an id"));
    let again = vote_as(&two, Some(&value)).await;
    assert_eq!(again.status(), StatusCode::OK, "another replica, same key");
    assert_eq!(
        voter_of(&cookie_value(&again, "voter_id").expect("refreshed")),
        value
    );
    let made_up = format!("{}.{}", id_of(&value), "ab".repeat(16));
    for (service, cookie) in [(&other, value.as_str()), (&one, made_up.as_str())] {
        let refused = vote_as(service, Some(cookie)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{cookie}");
        assert!(cookie_value(&refused, "voter_id").is_none());
        let body: serde_json::Value = refused.json().await.expect("JSON");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("not issued by this site"),
            "{body}"
        );
    }
    let id = id_of(&value);
    assert_eq!(
        queued(&redis),
        vec![(id.clone(), "a".into()), (id, "a".into())]
    );
    for service in [one, two, other] {
        service.stop().await.expect("clean stop");
    }
}

/// A bare id from before signing: 503 until a worker has loaded the ids
/// that voted then; afterwards such a voter keeps the id (and gets it
/// signed), and a bare id that never voted becomes a new voter.
#[tokio::test]
async fn legacy_ids_are_kept_only_for_voters_from_before() {
    let redis = RedisServer::start();
    let vote = start_vote(&redis, &[]).await;
    let before = "0123456789abcdef0123456789abcdef";
    let stranger = "fedcba9876543210fedcba9876543210";
    let early = vote_as(&vote, Some(before)).await;
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        queued(&redis).is_empty(),
        "nothing queued before the set is loaded"
    );
    let _: () = redis
        .query(redis::cmd("SADD").arg(queue::LEGACY_VOTERS).arg(before))
        .expect("SADD");
    let _: () = redis
        .query(redis::cmd("SET").arg(queue::LEGACY_VOTERS_LOADED).arg("1"))
        .expect("SET");
    let kept = vote_as(&vote, Some(before)).await;
    assert_eq!(kept.status(), StatusCode::OK);
    let signed = voter_of(&cookie_value(&kept, "voter_id").expect("signed now"));
    assert!(signed.starts_with(&format!("{before}.")), "{signed}");
    assert_eq!(vote_as(&vote, Some(&signed)).await.status(), StatusCode::OK);
    let fresh = vote_as(&vote, Some(stranger)).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let new_id = id_of(&voter_of(
        &cookie_value(&fresh, "voter_id").expect("a new id"),
    ));
    assert_ne!(new_id, stranger);
    let voters: Vec<String> = queued(&redis).into_iter().map(|(v, _)| v).collect();
    assert_eq!(voters, vec![before.to_owned(), before.to_owned(), new_id]);
    vote.stop().await.expect("clean stop");
}

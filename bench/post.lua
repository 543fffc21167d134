-- The vote form's POST, sent by wrk to both the vote service and nginx, so the
-- two are measured with byte-identical requests. No cookie: every request is
-- a new voter, the worst case for vote (it mints an id per request).
wrk.method = "POST"
wrk.body = "vote=a"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

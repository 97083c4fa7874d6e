"""Every answer of the monitor (dashboard, API, errors) carries CSP, nosniff and frame protection."""

from __future__ import annotations


def test_pages_api_and_errors_send_security_headers(make_app, auth):
    client = make_app().test_client()
    answers = [client.get("/"), client.get("/api/models"), client.get("/healthz"),
               client.get("/api/evaluations/12345"), client.get("/no-such-page"),
               client.get("/dashboard/static/charts.js"),
               client.post("/api/models/x/batches", data=b"<a/>", content_type="text/xml", headers=auth)]
    for resp in answers:
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, resp.request.path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
    assert [r.status_code for r in answers[3:5]] == [404, 404]

"""Operations endpoints: metrics in valid exposition format, readiness, the OpenAPI document."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.services.process import free_port


def test_metrics_parse_and_report_evaluations_and_drift_scores(make_app, champion, auth):
    client = make_app().test_client()
    resp = client.post(f"/api/models/{champion}/evaluate", json={"scenario": "data_drift", "seed": 3},
                       headers=auth)
    assert resp.status_code == 201
    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    evaluations = {s.labels["status"]: s.value for s in families["driftline_evaluations"].samples
                   if s.labels.get("model") == champion and s.name.endswith("_total")}
    assert evaluations == {"ok": 1.0}
    scores = [s for s in families["driftline_feature_drift_score"].samples if s.labels["model"] == champion]
    assert {s.labels["feature"] for s in scores} == {"x0", "x1"}
    last_success = families["driftline_last_success_timestamp_seconds"].samples
    assert any(s.labels["model"] == champion for s in last_success)
    assert "driftline_evaluation_duration_seconds" in families


def test_readyz_is_503_with_a_reason_when_tracking_is_down(make_app):
    client = make_app(tracking_url=f"http://127.0.0.1:{free_port()}").test_client()
    assert client.get("/healthz").status_code == 200
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert any("tracking server" in r for r in resp.get_json()["detail"]["reasons"])


def test_readyz_is_200_when_database_and_tracking_answer(make_app):
    assert make_app().test_client().get("/readyz").status_code == 200


def test_openapi_document_describes_every_endpoint(make_app):
    doc = make_app().test_client().get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/models", "/api/models/{name}/evaluations", "/api/evaluations/{id}",
                 "/api/models/{name}/batches", "/api/models/{name}/evaluate", "/healthz", "/readyz"):
        assert path in doc["paths"]

"""Pushing batches: good ones are evaluated at once; bad ones get a 4xx with a body saying what to fix."""

from __future__ import annotations

import io

import pandas as pd

ROWS = [{"x0": 10.0 + i, "x1": 50.0 + i % 7, "y": 10.5 + i} for i in range(40)]


def test_pushed_csv_batch_is_evaluated_at_once(make_app, champion, auth):
    client = make_app().test_client()
    body = pd.DataFrame(ROWS).to_csv(index=False).encode()
    resp = client.post(f"/api/models/{champion}/batches", data=body, content_type="text/csv", headers=auth)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "ok" and resp.get_json()["source"] == "push"


def test_pushed_parquet_batch_is_evaluated(make_app, champion, auth):
    client = make_app().test_client()
    buffer = io.BytesIO()
    pd.DataFrame(ROWS).to_parquet(buffer)
    resp = client.post(f"/api/models/{champion}/batches", data=buffer.getvalue(),
                       content_type="application/vnd.apache.parquet", headers=auth)
    assert resp.status_code == 201, resp.get_json()


def test_push_rejects_bad_batches_with_clear_reasons(make_app, champion, auth):
    client = make_app(MONITOR_MAX_BATCH_BYTES=4096).test_client()
    path = f"/api/models/{champion}/batches"

    wrong_columns = client.post(path, json=[{"x0": 1.0, "z": 2.0, "y": 1.0}], headers=auth)
    assert wrong_columns.status_code == 422
    assert "missing column(s) ['x1']" in wrong_columns.get_json()["error"]
    assert "unexpected column(s) ['z']" in wrong_columns.get_json()["error"]
    assert wrong_columns.get_json()["detail"]["status"] == "rejected"  # recorded as a rejected evaluation

    with_nan = client.post(path, data=b"x0,x1,y\n1,2,3\n,5,6\n", content_type="text/csv", headers=auth)
    assert with_nan.status_code == 422 and "NaN" in with_nan.get_json()["error"]

    empty = client.post(path, data=b"", content_type="application/json", headers=auth)
    assert empty.status_code == 400 and "empty" in empty.get_json()["error"]

    oversized = client.post(path, data=b"x0,x1,y\n" + b"1,2,3\n" * 2000, content_type="text/csv",
                            headers=auth)
    assert oversized.status_code == 413 and "4096" in oversized.get_json()["error"]

    wrong_type = client.post(path, data=b"<xml/>", content_type="application/xml", headers=auth)
    assert wrong_type.status_code == 415 and "text/csv" in wrong_type.get_json()["error"]

    no_token = client.post(path, json=ROWS)
    assert no_token.status_code == 401 and "Authorization: Bearer" in no_token.get_json()["detail"]
    wrong_token = client.post(path, json=ROWS, headers={"Authorization": "Bearer nope"})
    assert wrong_token.status_code == 401

    unknown = client.post("/api/models/no-such-model-xyz/batches", json=ROWS, headers=auth)
    assert unknown.status_code == 404 and unknown.get_json()["error"]

"""The push path against hostile or sloppy input: every sender mistake is a 4xx saying what is wrong,
nothing half-stored, never a failed evaluation and never a monitor_failure alert; content decides
idempotency."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

ROWS = [{"x0": 10.0 + i, "x1": 50.0 + i % 7, "y": 10.5 + i} for i in range(40)]


def _evaluations(app) -> list[tuple[str, str]]:
    monitor = app.extensions["driftline"]
    with monitor.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT batch_id, status FROM evaluations"))]


def _alerts(app, name: str) -> list[tuple[str, str]]:
    monitor = app.extensions["driftline"]
    with monitor.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT state, bad_streak FROM alerts WHERE "
                                                       "alertname = :n"), {"n": name})]


def _parquet(frame: pd.DataFrame | pa.Table, **kwargs) -> bytes:
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **kwargs)
    return buffer.getvalue()


def test_malformed_json_batches_are_400_and_never_fire_monitor_failure(make_app, champion, auth):
    app = make_app(ALERT_FAILURE_THRESHOLD=3)
    client = app.test_client()
    path = f"/api/models/{champion}/batches"
    huge_number = b'[{"x0": ' + b"7" * 400 + b', "x1": 2.0, "y": 3.0}]'
    duplicated = b'{"columns": ["x0", "x0", "y"], "data": [[1.0, 2.0, 3.0]]}'
    cases = {
        huge_number: "400 characters",
        duplicated: "duplicated column(s) ['x0']",
        b'[{"x0": NaN, "x1": 2.0, "y": 3.0}]': "NaN is not valid JSON",
        b'[{"x0": 1e999, "x1": 2.0, "y": 3.0}]': "does not fit a 64-bit float",
        b'[{"x0": 1.0, "x0": 2.0, "x1": 2.0, "y": 3.0}]': "repeats key(s) ['x0']",
        b'{"columns": ["x0", "x1", "y"], "data": [[1.0, 2.0]]}': "row 0 of \"data\" has 2 values",
        b'[{"x0": 1.0, "x1": 2.0, "y": 3.0}': "cannot read the body as json",
    }
    for _ in range(3):  # three in a row: would have fired the critical monitor_failure alert
        for body, message in cases.items():
            resp = client.post(path, data=body, content_type="application/json", headers=auth)
            assert resp.status_code == 400, (body[:60], resp.get_json())
            assert message in resp.get_json()["error"], resp.get_json()
    assert _evaluations(app) == []
    assert all(state != "firing" for state, _ in _alerts(app, "monitor_failure"))


def test_duplicated_csv_header_and_nested_json_values_are_refused(make_app, champion, auth):
    app = make_app()
    client = app.test_client()
    path = f"/api/models/{champion}/batches"
    csv = client.post(path, data=b"x0,x0,y\n1,2,3\n", content_type="text/csv", headers=auth)
    assert csv.status_code == 400 and "duplicated column(s) ['x0']" in csv.get_json()["error"]
    nested = client.post(path, json=[{"x0": {"a": 1}, "x1": [1, 2], "y": 1.0}], headers=auth)
    assert nested.status_code == 422, nested.get_json()
    assert "wrong type" in nested.get_json()["error"]
    assert [status for _, status in _evaluations(app)] == ["rejected"]


def test_limits_on_rows_columns_and_cells_answer_413_naming_the_limit(make_app, champion, auth):
    app = make_app(MONITOR_MAX_BATCH_ROWS=50, MONITOR_MAX_BATCH_COLUMNS=3, MONITOR_MAX_BATCH_CELLS=120)
    client = app.test_client()
    path = f"/api/models/{champion}/batches"
    many_rows = pd.DataFrame({"x0": np.arange(60.0), "y": 2.0})  # 120 cells: only the rows break a limit
    wide = pd.DataFrame({f"c{i}": [1.0] for i in range(4)})
    cells = pd.DataFrame({"x0": np.arange(45.0), "x1": 1.0, "y": 2.0})  # 135 cells, 45 rows
    sends = {
        "csv": lambda f: (f.to_csv(index=False).encode(), "text/csv"),
        "json": lambda f: (f.to_json(orient="records").encode(), "application/json"),
        "split": lambda f: (f.to_json(orient="split", index=False).encode(), "application/json"),
        "parquet": lambda f: (_parquet(f), "application/vnd.apache.parquet"),
    }
    for kind, encode in sends.items():
        for frame, limit, setting in ((many_rows, "50 rows", "MONITOR_MAX_BATCH_ROWS"),
                                      (wide, "3 columns", "MONITOR_MAX_BATCH_COLUMNS"),
                                      (cells, "120 cells", "MONITOR_MAX_BATCH_CELLS")):
            body, content_type = encode(frame)
            resp = client.post(path, data=body, content_type=content_type, headers=auth)
            assert resp.status_code == 413, (kind, setting, resp.get_json())
            assert limit in resp.get_json()["error"] and setting in resp.get_json()["error"]
            assert resp.get_json()["detail"]["setting"] == setting
    assert _evaluations(app) == []
    within = client.post(path, data=cells.iloc[:40].to_csv(index=False).encode(), content_type="text/csv",
                         headers=auth)
    assert within.status_code == 201, within.get_json()


def test_parquet_bomb_is_refused_from_its_metadata(make_app, champion, auth):
    app = make_app()
    client = app.test_client()
    bomb = _parquet(pa.table({c: pa.array(np.zeros(20_000_000)) for c in ("x0", "x1", "y")}),
                    compression="zstd")
    assert len(bomb) < 1_000_000
    resp = client.post(f"/api/models/{champion}/batches", data=bomb,
                       content_type="application/vnd.apache.parquet", headers=auth)
    assert resp.status_code == 413
    assert "2000000 rows" in resp.get_json()["error"] and "20000000" in resp.get_json()["error"]
    assert _evaluations(app) == []


def test_string_heavy_parquet_is_bounded_by_its_decoded_size(make_app, champion, auth):
    """Strings decode beyond the file: dictionary repeats, a compressed run of one long value, and
    prefix-sharing DELTA_BYTE_ARRAY pages are all 413 naming the decoded-size limit, nothing stored."""
    app = make_app(MONITOR_MAX_BATCH_DECODED_BYTES=str(64 * 1024 * 1024))
    client = app.test_client()
    long = "v" * 100_000
    numbers = {"x0": np.zeros(2_000), "y": np.zeros(2_000)}
    repeated = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2_000, dtype=np.int32)), pa.array([long]))
    bombs = {
        "dictionary": _parquet(pa.table({**numbers, "x1": repeated}), compression="zstd"),
        "plain run": _parquet(pa.table({**numbers, "x1": [long] * 2_000}), compression="zstd",
                              use_dictionary=False),
        "delta": _parquet(pa.table({**numbers, "x1": [long] * 2_000}), compression="zstd",
                          use_dictionary=False, column_encoding={"x1": "DELTA_BYTE_ARRAY"}),
    }
    for kind, bomb in bombs.items():
        assert len(bomb) < 300_000, kind
        resp = client.post(f"/api/models/{champion}/batches", data=bomb,
                           content_type="application/vnd.apache.parquet", headers=auth)
        assert resp.status_code == 413, (kind, resp.get_json())
        assert "MONITOR_MAX_BATCH_DECODED_BYTES" in resp.get_json()["error"], kind
    assert _evaluations(app) == []
    # Ordinary string columns (dictionary-encoded by default) decode to the same frame as before.
    frame = pd.DataFrame(ROWS).assign(colour=["red", "green"] * 20)
    from monitor.sources.push import BatchLimits, parse_batch

    limits = BatchLimits(10**8, 10**6, 100, 10**7, 10**6)
    parsed = parse_batch(_parquet(frame), "application/vnd.apache.parquet", limits)
    pd.testing.assert_frame_equal(parsed, pq.read_table(io.BytesIO(_parquet(frame))).to_pandas())


def test_huge_evaluation_ids_are_not_found(make_app):
    client = make_app().test_client()
    for path in ("/api/evaluations/99999999999999999999", "/evaluations/99999999999999999999",
                 "/api/evaluations/2147483648"):
        resp = client.get(path)
        assert resp.status_code == 404, (path, resp.status_code)


def test_same_batch_id_same_rows_gives_stored_verdict_other_rows_409(make_app, champion, auth):
    app = make_app()
    client = app.test_client()
    path = f"/api/models/{champion}/batches"
    headers = {**auth, "X-Batch-Id": "orders-2026-12-01"}
    frame = pd.DataFrame(ROWS)
    first = client.post(path, data=frame.to_csv(index=False).encode(), content_type="text/csv",
                        headers=headers)
    assert first.status_code == 201, first.get_json()
    # The same rows in another format and column order are the same batch.
    again = client.post(path, json=frame[["y", "x1", "x0"]].to_dict(orient="records"), headers=headers)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    other = frame.assign(x0=frame["x0"] + 1)
    conflict = client.post(path, data=other.to_csv(index=False).encode(), content_type="text/csv",
                           headers=headers)
    assert conflict.status_code == 409, conflict.get_json()
    assert "orders-2026-12-01" in conflict.get_json()["error"]
    assert "other rows" in conflict.get_json()["error"]
    assert conflict.get_json()["detail"]["batch_id"] == "orders-2026-12-01"
    assert _evaluations(app) == [("orders-2026-12-01", "ok")]

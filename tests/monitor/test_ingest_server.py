"""Hostile bodies against a real `python -m monitor serve` (gunicorn): refused before the work, the
worker's memory flat, nothing stored."""

from __future__ import annotations

import http.client
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.monitor.processes import gunicorn_workers, rows, start_monitor

TOKEN = "t" * 24


def _workers(master_pid: int) -> list[int]:
    return gunicorn_workers(master_pid)  # the run logger side process is a child too


def _memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _post(url: str, path: str, body, content_type: str, chunked: bool = False) -> tuple[int, dict]:
    host = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
    resp = conn.getresponse()
    payload = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, payload


@pytest.fixture
def served(tmp_path, monitor_db, tracking_server, champion):
    proc, url = start_monitor(tmp_path, "monitor", db_url=monitor_db, tracking_url=tracking_server.url,
                              model=champion, workers=1, scheduler=False)
    yield proc, url
    proc.stop()


def test_parquet_bomb_is_refused_with_the_workers_memory_flat(served, monitor_db, champion):
    proc, url = served
    path = f"/api/models/{champion}/batches"
    warm = b"x0,x1,y\n" + b"".join(f"{i},{i % 7},{i}.5\n".encode() for i in range(50))
    status, _ = _post(url, path, warm, "text/csv")  # model and profile loaded: memory as in service
    assert status == 201
    (worker,) = _workers(proc.proc.pid)
    before = _memory_kb(worker)
    table = pa.table({c: pa.array(np.zeros(20_000_000)) for c in ("x0", "x1", "y")})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    del table
    bomb = buffer.getvalue()
    assert len(bomb) < 400_000  # 20,000,000 rows in a few hundred KB
    status, body = _post(url, path, bomb, "application/vnd.apache.parquet")
    after = _memory_kb(worker)
    assert status == 413 and "20000000" in body["error"] and "MONITOR_MAX_BATCH_ROWS" in body["error"]
    # 20M x 3 float64 would be 480 MB; the peak (high-water mark) stays within a few MB.
    assert after["VmHWM"] - max(before["VmHWM"], before["VmRSS"]) < 30_000, (before, after)
    assert rows(monitor_db, "SELECT count(*) FROM evaluations")[0][0] == 1


def test_string_bomb_is_refused_before_its_strings_are_expanded(served, monitor_db, champion):
    """A few hundred KB of Parquet whose one dictionary string (1 MB) repeats 2,000 times: 2 GB once
    decoded. Refused from the footer and the dictionary, the worker's memory flat."""
    proc, url = served
    path = f"/api/models/{champion}/batches"
    warm = b"x0,x1,y\n" + b"".join(f"{i},{i % 7},{i}.5\n".encode() for i in range(50))
    assert _post(url, path, warm, "text/csv")[0] == 201
    (worker,) = _workers(proc.proc.pid)
    before = _memory_kb(worker)
    words = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2_000, dtype=np.int32)),
                                           pa.array(["w" * 1_000_000]))
    table = pa.table({"x0": np.zeros(2_000), "x1": words, "y": np.zeros(2_000)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    bomb = buffer.getvalue()
    assert len(bomb) < 400_000
    status, body = _post(url, path, bomb, "application/vnd.apache.parquet")
    after = _memory_kb(worker)
    assert status == 413 and "MONITOR_MAX_BATCH_DECODED_BYTES" in body["error"], body
    assert after["VmHWM"] - max(before["VmHWM"], before["VmRSS"]) < 30_000, (before, after)
    assert rows(monitor_db, "SELECT count(*) FROM evaluations")[0][0] == 1


def test_chunked_csv_over_the_byte_limit_is_413_and_nothing_stored(served, monitor_db, champion):
    _, url = served
    line = b"1.5,2.5,3.5\n"
    target = 16 * 1024 * 1024

    def body():
        yield b"x0,x1,y\n"
        sent = 0
        block = line * 8192
        while sent < target:
            yield block
            sent += len(block)

    status, payload = _post(url, f"/api/models/{champion}/batches", body(), "text/csv", chunked=True)
    assert status == 413, payload
    assert str(10 * 1024 * 1024) in payload["error"] and "MONITOR_MAX_BATCH_BYTES" in payload["error"]
    assert rows(monitor_db, "SELECT count(*) FROM evaluations")[0][0] == 0
    # A chunked body within the limit is read whole, not cut.
    small = (b"x0,x1,y\n" + line * 100 for _ in range(1))
    status, payload = _post(url, f"/api/models/{champion}/batches", small, "text/csv", chunked=True)
    assert status == 201 and payload["n_rows"] == 100, payload

"""monitor.pg_copy: a row written with binary COPY reads back as the ORM would have written it."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from monitor import pg_copy
from monitor.loop_models import LabelledBatch
from monitor.models import ReferenceWindowRows
from monitor.retraining import batches_frame, keep_rows


@pytest.fixture
def sessions(monitor_db):
    engine = sa.create_engine(monitor_db)
    yield sessionmaker(engine)
    engine.dispose()


def test_copy_row_round_trips_every_column_type(sessions, monkeypatch) -> None:
    monkeypatch.setattr(pg_copy, "CHUNK", 1000)  # the bytea goes in several pieces
    data = np.random.default_rng(3).bytes(10_001)
    at = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    name = "a\tname\\with\nodd ch\u00e4rs"
    with sessions() as session, session.begin():
        pg_copy.copy_row(session, LabelledBatch.__table__, {
            "model_name": name, "model_version": "7", "evaluation_id": 2**31 - 1, "batch_id": "b-1",
            "n_rows": 3, "created_at": at, "data": memoryview(data)})
        pg_copy.copy_row(session, ReferenceWindowRows.__table__, {
            "model_name": "m", "model_version": "1", "evaluation_id": None, "n_rows": 0, "data": b"",
            "created_at": datetime(1999, 12, 31, 23, 59, 59)})  # before PostgreSQL's epoch, naive = UTC
    with sessions() as session:
        [row] = session.scalars(sa.select(LabelledBatch)).all()
        assert (row.model_name, row.model_version, row.evaluation_id, row.batch_id, row.n_rows) == \
            (name, "7", 2**31 - 1, "b-1", 3)
        assert row.created_at == at and bytes(row.data) == data and row.id > 0
        [window] = session.scalars(sa.select(ReferenceWindowRows)).all()
        assert window.evaluation_id is None and bytes(window.data) == b""
        assert window.created_at == datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_keep_rows_on_postgresql_reads_back_the_same_frame(sessions) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x0": rng.normal(size=500), "x1": rng.integers(0, 4, 500),
                          "y": rng.normal(size=500)})
    evaluation = type("E", (), {"model_name": "m", "model_version": "1", "id": 11, "batch_id": "b"})()
    with sessions() as session, session.begin():
        for _ in range(3):
            keep_rows(session, evaluation, frame, keep=2)  # the oldest is pruned in the same transaction
    with sessions() as session:
        ids = list(session.scalars(sa.select(LabelledBatch.id).order_by(LabelledBatch.id)))
        assert len(ids) == 2
        pd.testing.assert_frame_equal(batches_frame(session, ids[:1]), frame)
        stored = session.scalars(sa.select(LabelledBatch)).first()
        assert pd.read_parquet(io.BytesIO(stored.data)).shape == frame.shape


def test_a_batch_larger_than_the_cap_keeps_the_same_seeded_sample_of_its_rows(sessions) -> None:
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"x0": np.arange(5_000, dtype=float), "y": rng.normal(size=5_000)})
    evaluation = type("E", (), {"model_name": "m", "model_version": "1", "id": 12, "batch_id": "b"})()
    with sessions() as session, session.begin():
        keep_rows(session, evaluation, frame, keep=5, max_rows=1_000)
        keep_rows(session, evaluation, frame, keep=5, max_rows=1_000)  # the same batch again
        keep_rows(session, evaluation, frame.iloc[:800], keep=5, max_rows=1_000)  # under the cap: all
    with sessions() as session:
        rows = session.scalars(sa.select(LabelledBatch).order_by(LabelledBatch.id)).all()
        assert [r.n_rows for r in rows] == [1_000, 1_000, 800]
        first, again, small = (batches_frame(session, [r.id]) for r in rows)
    pd.testing.assert_frame_equal(first, again)  # seeded: the same rows every time
    assert first["x0"].is_unique and first["x0"].is_monotonic_increasing  # distinct, in batch order
    pd.testing.assert_frame_equal(first, frame.set_index("x0", drop=False).loc[first["x0"]]
                                  .reset_index(drop=True))  # whole rows, labels with their inputs
    assert 1_500 < first["x0"].mean() < 3_500  # spread over the batch, not its head
    pd.testing.assert_frame_equal(small, frame.iloc[:800])


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_pending_batch_is_kept_by_copy_with_its_json_and_reads_back(backend, monitor_db, tmp_path,
                                                                      monkeypatch) -> None:
    """PostgreSQL: binary COPY; SQLite: the BLOB filled in pieces (monitor.db.sqlite_write_blob)."""
    from monitor import db, labels
    from monitor.migrate import upgrade
    from monitor.models import BatchLabels, Evaluation

    monkeypatch.setattr(labels, "IN_MEMORY_ROWS", 100)  # this batch goes through a temporary file
    url = monitor_db
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/monitor.db"
        upgrade(url)
        write_blob = db.sqlite_write_blob
        monkeypatch.setattr(db, "sqlite_write_blob",
                            lambda *a: write_blob(*a, chunk=1000))  # several pieces
    engine = db.make_engine(url)
    sessions = sessionmaker(engine)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x0": rng.normal(size=300), "k": rng.choice(["a", "b"], 300)})
    ids = pd.Series([f"row-{i}" for i in range(300)], name="rid")
    pending = labels.PendingBatch(labels._pending_frame(frame, rng.normal(size=300), None, ids), 300, "rid",
                                  profile_key="artifact:v1", drift_settings={"alpha": 0.05, "tests": ["ks"]},
                                  challengers={"challenger": {"version": "3", "policy": "notify"}})
    assert list(frame.columns) == ["x0", "k"]  # the batch itself is left as it was
    assert not isinstance(pending.data, io.BytesIO)  # a file, not a second copy in memory
    with sessions() as session, session.begin():
        evaluation = Evaluation(model_name="m", model_version="1", batch_id="b-7", source="push", status="ok")
        session.add(evaluation)
        session.flush()
        labels.keep_pending(session, evaluation, pending)
        evaluation_id = evaluation.id
    with sessions() as session:
        [row] = session.scalars(sa.select(BatchLabels)).all()
        assert (row.evaluation_id, row.batch_id, row.id_column, row.n_rows, row.profile_key) == \
            (evaluation_id, "b-7", "rid", 300, "artifact:v1")
        assert row.drift_settings == {"alpha": 0.05, "tests": ["ks"]}
        assert row.challengers == {"challenger": {"version": "3", "policy": "notify"}}
        assert row.created_at is not None and row.labels_digest is None and row.received_at is None
        stored = pd.read_parquet(io.BytesIO(bytes(row.data)))
    pd.testing.assert_frame_equal(stored[["x0", "k"]], frame)
    assert stored[labels.ROW_ID].tolist() == ids.tolist() and labels.PREDICTION in stored
    engine.dispose()

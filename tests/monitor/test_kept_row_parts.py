"""A large unlabelled batch's kept rows on PostgreSQL: staged as Parquet slices in their own commit
(monitor/labels.py ``_stage_parts``), claimed by the evaluation's commit, read back in order, and
never left behind (``release``, the retention prune). Real PostgreSQL."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from monitor import labels
from monitor.alerts import retention
from monitor.db import make_engine, utcnow
from monitor.models import BatchLabels, Evaluation, KeptRowPart


@pytest.fixture
def engine(monitor_db):
    engine = make_engine(monitor_db)
    yield engine
    engine.dispose()


def _batch(rows: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x0": rng.normal(size=rows), "n": rng.integers(0, 9, rows),
                          "k": rng.choice(["a", "b", "c"], rows)})
    proba = rng.dirichlet([1, 1], rows)
    return frame, proba.argmax(axis=1), proba, pd.Series([f"r{i}" for i in range(rows)], name="rid")


def _evaluation(session, batch_id: str) -> Evaluation:
    row = Evaluation(model_name="m", model_version="1", batch_id=batch_id, source="push", status="ok")
    session.add(row)
    session.flush()
    return row


def _parts(engine, key: str | None = None) -> list[tuple[int, int | None, int]]:
    with engine.connect() as connection:
        query = sa.select(KeptRowPart.seq, KeptRowPart.batch_labels_id, KeptRowPart.n_rows) \
            .order_by(KeptRowPart.key, KeptRowPart.seq)
        if key is not None:
            query = query.where(KeptRowPart.key == key)
        return [tuple(r) for r in connection.execute(query)]


def test_slices_are_committed_before_the_evaluation_and_read_back_as_the_batch(engine, monkeypatch) -> None:
    monkeypatch.setattr(labels, "PART_ROWS", 300)
    frame, predictions, proba, ids = _batch(1_000)
    staged = labels._stage_parts(engine, frame, predictions, proba, ids)
    assert staged.n_parts == 4
    # Committed in their own transaction, unclaimed: 300 + 300 + 300 + 100 rows in order.
    assert _parts(engine, staged.key) == [(0, None, 300), (1, None, 300), (2, None, 300), (3, None, 100)]

    pending = labels.PendingBatch(None, 1_000, "rid", profile_key="artifact:v1", parts_key=staged.key,
                                  n_parts=staged.n_parts)
    sessions = sessionmaker(engine)
    with sessions() as session, session.begin():
        labels.keep_pending(session, _evaluation(session, "b-1"), pending)
    with sessions() as session:
        stored = session.scalars(sa.select(BatchLabels)).one()
        assert stored.data is None
        assert (stored.batch_id, stored.n_rows, stored.id_column) == ("b-1", 1_000, "rid")
        assert {claim for _, claim, _ in _parts(engine)} == {stored.id}
        back = labels.kept_frame(session, stored)
    expected = labels._kept_columns(frame, predictions, proba, ids)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert back[labels.ROW_ID].tolist() == ids.tolist()  # the slices in order, no row twice
    assert back["x0"].dtype == np.float64 and back[labels.PREDICTION].tolist() == predictions.tolist()


def test_a_claim_short_of_a_slice_fails_the_store_and_writes_nothing(engine, monkeypatch) -> None:
    monkeypatch.setattr(labels, "PART_ROWS", 40)
    staged = labels._stage_parts(engine, *_batch(100))
    with engine.begin() as connection:  # one slice gone (pruned between staging and the commit)
        connection.execute(sa.delete(KeptRowPart).where(KeptRowPart.key == staged.key, KeptRowPart.seq == 1))
    sessions = sessionmaker(engine)
    pending = labels.PendingBatch(None, 100, None, parts_key=staged.key, n_parts=staged.n_parts)
    short = pytest.raises(RuntimeError, match="2 of the 3 staged slices")
    with short, sessions() as session, session.begin():
        labels.keep_pending(session, _evaluation(session, "b-2"), pending)
    with sessions() as session:
        assert session.scalars(sa.select(BatchLabels)).all() == []
        assert session.scalars(sa.select(Evaluation)).all() == []
    assert [claim for _, claim, _ in _parts(engine)] == [None, None]  # still unclaimed: the prune's


def test_a_slice_that_cannot_be_encoded_commits_none_of_them(engine, monkeypatch) -> None:
    monkeypatch.setattr(labels, "PART_ROWS", 25)
    write = labels.write_rows
    calls: list[int] = []

    def failing(frame, target, **options):  # a fault no real batch reliably causes: the disk, pyarrow
        calls.append(len(frame))
        if len(calls) == 3:
            raise OSError("no space left on device")
        write(frame, target, **options)

    monkeypatch.setattr(labels, "write_rows", failing)
    with pytest.raises(OSError, match="no space left"):
        labels._stage_parts(engine, *_batch(100))
    assert _parts(engine) == []  # the two slices copied before it went with their transaction


def test_release_deletes_only_unclaimed_slices_and_waits_for_the_staging(engine, monkeypatch) -> None:
    monkeypatch.setattr(labels, "PART_ROWS", 50)
    claimed = labels._stage_parts(engine, *_batch(100, seed=1))
    sessions = sessionmaker(engine)
    with sessions() as session, session.begin():
        labels.keep_pending(session, _evaluation(session, "b-3"),
                            labels.PendingBatch(None, 100, None, parts_key=claimed.key, n_parts=2))
    done: Future = Future()
    done.set_result(claimed)
    labels.release(done, engine)  # claimed already: kept
    assert len(_parts(engine, claimed.key)) == 2

    frame, predictions, proba, ids = _batch(100, seed=2)
    running = labels._pool("stager").submit(labels._stage_parts, engine, frame, predictions, proba, ids)
    labels.release(running, engine)  # a failed evaluation's: deleted once staged
    assert running.done() and _parts(engine, running.result().key) == []
    assert len(_parts(engine)) == 2

    broken: Future = Future()
    broken.set_exception(OSError("staging failed"))
    labels.release(broken, engine)  # nothing was committed: nothing to do, no error


def test_retention_prunes_expired_and_abandoned_slices_only(engine, monkeypatch) -> None:
    monkeypatch.setattr(labels, "PART_ROWS", 50)
    now = utcnow()
    sessions = sessionmaker(engine)
    keys = {}
    for name in ("old", "recent"):
        keys[name] = labels._stage_parts(engine, *_batch(100)).key
        with sessions() as session, session.begin():
            labels.keep_pending(session, _evaluation(session, name),
                                labels.PendingBatch(None, 100, None, parts_key=keys[name], n_parts=2))
    keys["abandoned"] = labels._stage_parts(engine, *_batch(60)).key
    keys["staging"] = labels._stage_parts(engine, *_batch(60)).key
    with engine.begin() as connection:
        connection.execute(sa.update(BatchLabels).where(BatchLabels.batch_id == "old")
                           .values(created_at=now - timedelta(days=91)))
        connection.execute(sa.update(KeptRowPart).where(KeptRowPart.key == keys["abandoned"])
                           .values(created_at=now - timedelta(hours=2)))
        connection.execute(sa.update(KeptRowPart).where(KeptRowPart.key == keys["staging"])
                           .values(created_at=now - timedelta(minutes=30)))
    with sessions() as session, session.begin():
        removed = retention.prune(session, now, timedelta(days=90))
    assert removed["kept_row_parts"] == 4
    assert _parts(engine, keys["old"]) == [] and _parts(engine, keys["abandoned"]) == []
    assert len(_parts(engine, keys["recent"])) == 2 and len(_parts(engine, keys["staging"])) == 2

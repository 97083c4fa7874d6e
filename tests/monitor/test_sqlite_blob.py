"""A large Parquet kept on SQLite (``monitor.db.insert_with_file``): filled in place, memory flat, and
the rebuild of migration 0014 that makes this possible keeps every row."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from monitor import db
from monitor.loop_models import LabelledBatch
from monitor.migrate import upgrade
from monitor.models import BatchLabels, Evaluation

MB = 2**20


def _peak_above_now() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def _keep(url: str, model: type, values: dict, data: object) -> int:
    """Keep ``data`` in a new row of ``model``: how far the process's peak rose meanwhile."""
    engine = db.make_engine(url)
    try:
        with sessionmaker(engine)() as session, session.begin():
            evaluation = Evaluation(model_name="m", model_version="1", batch_id=f"b-{model.__tablename__}",
                                    source="push", status="ok")
            session.add(evaluation)
            session.flush()
            _peak_above_now()
            before = _status_kb("VmRSS")
            db.insert_with_file(session, model, {**values, "evaluation_id": evaluation.id}, "data", data)
            return (_status_kb("VmHWM") - before) * 1024
    finally:
        engine.dispose()


def test_a_large_blob_is_filled_in_place_without_a_copy_in_memory(tmp_path) -> None:
    # Before 0014 the columns after `data` made SQLite build the zero-filled record in memory: a
    # 96 MB file raised the peak by about 190 MB. Now the pieces go to the pages as they are read.
    url = f"sqlite:///{tmp_path}/monitor.db"
    upgrade(url)
    size = 96 * MB
    piece = os.urandom(MB)
    for model, values in ((BatchLabels, {"model_name": "m", "batch_id": "b", "n_rows": 1, "challengers": {}}),
                          (LabelledBatch, {"model_name": "m", "model_version": "1", "batch_id": "b",
                                           "n_rows": 1})):
        with tempfile.TemporaryFile() as data:
            for _ in range(size // MB):
                data.write(piece)
            peak = _keep(url, model, values, data)
        table = model.__tablename__
        assert peak < 24 * MB, f"{table}: the peak rose {peak / MB:.0f} MB for a {size // MB} MB blob"
        with sqlite3.connect(f"{tmp_path}/monitor.db") as con:
            stored = con.execute(f"SELECT length(data), substr(data, {size - MB + 1}) FROM {table}")
        assert stored.fetchone() == (size, piece)


def test_the_rebuild_keeps_the_rows_and_constraints_and_puts_data_last(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/monitor.db"
    upgrade(url, "0013_parquet_storage")
    blob = os.urandom(3 * MB)
    with sqlite3.connect(f"{tmp_path}/monitor.db") as con:
        con.execute("INSERT INTO evaluations (id, model_name, model_version, batch_id, source, status, "
                    "drifted_features, report, started_at, finished_at) VALUES (1, 'm', '1', 'b', 'push', "
                    "'ok', '[]', '{}', '2026-12-03 10:00:00', '2026-12-03 10:00:01')")
        con.execute("INSERT INTO batch_labels (evaluation_id, model_name, batch_id, n_rows, data, "
                    "created_at, challengers) VALUES (1, 'm', 'b', 7, ?, '2026-12-03 10:00:00', "
                    "'{\"c\": 1}')", (blob,))
        con.execute("INSERT INTO labelled_batches (model_name, model_version, evaluation_id, batch_id, "
                    "n_rows, data, created_at) VALUES ('m', '1', 1, 'b', 7, ?, '2026-12-03 10:00:00')",
                    (blob,))
    upgrade(url)
    engine = db.make_engine(url)
    try:
        with sessionmaker(engine)() as session:
            kept = session.scalars(sa.select(BatchLabels)).one()
            assert (kept.n_rows, kept.challengers) == (7, {"c": 1})
            assert hashlib.sha256(kept.data).digest() == hashlib.sha256(blob).digest()
            assert bytes(session.scalars(sa.select(LabelledBatch)).one().data) == blob
        inspector = sa.inspect(engine)
        for table in ("batch_labels", "labelled_batches"):
            assert [c["name"] for c in inspector.get_columns(table)][-1] == "data"
        assert inspector.get_unique_constraints("batch_labels")[0]["column_names"] == ["evaluation_id"]
        [fk] = inspector.get_foreign_keys("batch_labels")
        assert (fk["referred_table"], fk["options"].get("ondelete")) == ("evaluations", "CASCADE")
        assert [i["name"] for i in inspector.get_indexes("labelled_batches")] == ["ix_labelled_batches_model"]
        with engine.begin() as connection:  # the cascade still holds
            connection.execute(sa.text("DELETE FROM evaluations"))
            assert connection.scalar(sa.text("SELECT count(*) FROM batch_labels")) == 0
    finally:
        engine.dispose()

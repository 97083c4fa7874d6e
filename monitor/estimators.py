"""Persistence of the label-free performance estimators, beside the reference profiles they belong to.

Pickled scikit-learn models: only the monitor writes the ``performance_estimators`` table, and the key
names the scikit-learn version and the estimators' format, so an upgrade refits rather than
unpickling another version's trees.
A version with no possible estimator stores ``None``, so it is not refitted on every restart.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from monitor.models import StoredEstimator

log = logging.getLogger(__name__)


FORMAT = "dle2"  # the estimators' own layout (monitor/estimation.py): a change refits them


def estimator_key(profile_key: str) -> str:
    import sklearn

    return f"{profile_key}:sklearn-{sklearn.__version__}:{FORMAT}"[:255]


def store_estimator(sessions: sessionmaker, key: tuple[str, str, str], estimator: Any) -> None:
    blob = None if estimator is None else pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        with sessions.begin() as session:
            session.add(StoredEstimator(model_name=key[0], model_version=key[1],
                                        key=estimator_key(key[2]), estimator=blob))
    except IntegrityError:
        pass  # another process stored one first, fitted on the same rows with the same seed


def load_estimator(sessions: sessionmaker, key: tuple[str, str, str]) -> tuple[bool, Any]:
    """(whether one was stored, the estimator or None)."""
    with sessions() as session:
        row = session.execute(sa.select(StoredEstimator.estimator).where(
            StoredEstimator.model_name == key[0], StoredEstimator.model_version == key[1],
            StoredEstimator.key == estimator_key(key[2]))).first()
    if row is None:
        return False, None
    if row[0] is None:
        return True, None
    try:
        return True, pickle.loads(bytes(row[0]))  # noqa: S301 - written by this monitor (module docstring)
    except Exception:  # noqa: BLE001 - unreadable: refit with the profile
        log.warning("stored performance estimator of %s v%s is unreadable; refitting", key[0], key[1])
        return False, None

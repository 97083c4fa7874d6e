"""The checks a version passes before any alias moves to it: it loads through ``models:/`` as any
client would, predicts finite values for every row of the reference, and its input signature is
compatible with the champion's (it asks for no column the champion's callers do not send, with the
same types).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class VersionCheckFailed(Exception):
    """The version must not become champion; ``hint`` says what to do."""

    def __init__(self, what: str, hint: str = "no alias was moved; check the model") -> None:
        self.what = what
        self.hint = hint
        super().__init__(what)


def predict_version(name: str, version: str, features: pd.DataFrame, *, numeric: bool = True) -> np.ndarray:
    """Load `models:/name/version` and predict ``features``; VersionCheckFailed if it misbehaves.

    ``numeric``: predictions must be finite numbers (regression); else any non-null labels."""
    import mlflow.pyfunc

    uri = f"models:/{name}/{version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
        raw = np.asarray(model.predict(features)).reshape(-1)
        predictions = raw.astype("float64") if numeric else raw
    except Exception as exc:  # noqa: BLE001 - any failure means the version is unusable
        raise VersionCheckFailed(
            f"{uri} failed validation ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            "no alias was moved; check the model's run for what went wrong") from exc
    finite = np.isfinite(predictions).all() if numeric else not pd.isna(predictions).any()
    if predictions.shape != (len(features),) or not finite:
        raise VersionCheckFailed(f"{uri} failed validation: expected {len(features)} "
                                 f"{'finite ' if numeric else ''}predictions, got shape {predictions.shape}")
    return predictions


def input_columns(name: str, version: str) -> dict[str, str] | None:
    """The version's input signature as {column: type}, None when it has no column signature."""
    from mlflow.models import get_model_info

    try:
        info = get_model_info(f"models:/{name}/{version}")
    except Exception as exc:  # noqa: BLE001
        raise VersionCheckFailed(f"models:/{name}/{version} has no readable MLmodel ({exc})") from exc
    schema = info.signature.inputs if info.signature is not None else None
    if schema is None:
        return None
    try:
        return {c.name: _type_name(c.type) for c in schema.inputs if getattr(c, "name", None)}
    except Exception:  # noqa: BLE001 - tensor signatures have no named columns
        return None


def signature_problems(candidate: dict[str, str] | None, champion: dict[str, str] | None) -> list[str]:
    """Why the candidate cannot take the champion's inputs (empty: compatible).

    A missing signature on either side is not a problem in itself: the prediction check on the
    reference is then what shows the version works."""
    if candidate is None or champion is None:
        return []
    problems = [f"needs column {c!r} that the champion's callers do not send"
                for c in candidate if c not in champion]
    problems += [f"column {c!r} is {t} (champion: {champion[c]})"
                 for c, t in candidate.items() if c in champion and not _same_kind(t, champion[c])]
    return problems


def check_version(name: str, version: str, reference: pd.DataFrame, *,
                  champion_version: str | None = None, numeric: bool = True) -> dict[str, Any]:
    """All checks; returns what was checked (kept as evidence), raises VersionCheckFailed."""
    candidate = input_columns(name, version)
    champion = input_columns(name, champion_version) if champion_version else None
    problems = signature_problems(candidate, champion)
    if problems:
        raise VersionCheckFailed(f"{name} v{version} signature is not compatible with champion "
                                 f"v{champion_version}: " + "; ".join(problems))
    columns = list(candidate) if candidate else list(reference.columns)
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise VersionCheckFailed(f"{name} v{version} needs columns {missing} the reference lacks")
    predict_version(name, version, reference[columns], numeric=numeric)
    return {"loads": True, "predicted_rows": len(reference), "signature": candidate or "none",
            "champion_version": champion_version}


_KINDS = {"double": "float", "float": "float", "long": "int", "integer": "int"}


def _same_kind(a: str, b: str) -> bool:
    # An int column where the champion took floats (or back) is the same data to a caller.
    numeric = {"float", "int"}
    ka, kb = _KINDS.get(a, a), _KINDS.get(b, b)
    return ka == kb or (ka in numeric and kb in numeric)


def _type_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)

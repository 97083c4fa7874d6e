"""Fire-after-K: on clean batches flagged at random (5 % per evaluation), K=2 fires fewer alerts."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert
from monitor.db import utcnow
from tests.alerts.conftest import alert_config, verdict

EVALUATIONS = 1000
FLAG_RATE = 0.05
SEED = 20260101


def _false_alarms(sessions, model: str, fire_after: int) -> int:
    config = alert_config()
    config = replace(config, lifecycle=replace(config.lifecycle, fire_after=fire_after))
    engine = AlertEngine(config)
    rng = random.Random(SEED)  # the same flag sequence for every K
    start = utcnow()
    with sessions() as session, session.begin():
        for i in range(EVALUATIONS):
            flagged = rng.random() < FLAG_RATE
            ev = SimpleNamespace(id=i + 1, model_name=model, model_version="1", batch_id=f"b{i}",
                                 **verdict("data_drift" if flagged else "clean"))
            engine.on_evaluation(session, ev, now=start + timedelta(minutes=i))
        return session.scalar(sa.select(Alert.episodes).where(Alert.model_name == model)) or 0


def test_fire_after_two_lowers_false_alarms(sessions, unique_name):
    fired = {k: _false_alarms(sessions, unique_name(f"k{k}"), k) for k in (1, 2)}
    rates = {k: n / EVALUATIONS for k, n in fired.items()}
    print(f"\nfalse alarms on {EVALUATIONS} clean evaluations flagged at {FLAG_RATE:.0%} (seed {SEED}): "
          f"K=1 {fired[1]} ({rates[1]:.1%} of evaluations), K=2 {fired[2]} ({rates[2]:.2%})")
    assert fired[1] > 20  # about 1000 × 0.05 × P(not already firing)
    assert fired[2] < fired[1] / 5  # about 1000 × 0.05² ≈ 2.5

"""Where batches come from: simulated seed scenarios, an S3 inbox, or pushed to the API.

Every source yields ``Batch`` objects; the batch id is what makes an evaluation idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Batch:
    batch_id: str
    source: str  # simulated | s3 | push | manual
    frame: pd.DataFrame
    scenario: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None  # of the rows (pushed batches): a re-push under this id must match it

"""Summary figures for benchmarks: ``{median, p90, n, unit}``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def figure(values: Sequence[float | None], unit: str = "s", **extra: Any) -> dict[str, Any]:
    """Median/p90 of measured values (empty list -> n=0 and nulls)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"median": None, "p90": None, "n": 0, "unit": unit, **extra}
    return {"median": round(float(np.median(v)), 4), "p90": round(float(np.percentile(v, 90)), 4),
            "n": int(v.size), "unit": unit, **extra}

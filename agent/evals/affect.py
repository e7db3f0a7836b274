"""Accuracy of the emotion, gender and age recognisers on labelled data (``main.py eval emotion|gender|age``).

Layouts: ``DIR/<label>/*.jpg`` (emotion: any label ``agent.think.prompts.EMOTION_FAMILY`` knows;
gender: ``female``/``male``); ``CASES.jsonl`` lines ``{"text", "emotion": [acceptable labels]}``;
``CASES.csv`` with a ``file`` (or ``path``) column relative to the CSV and a ``gender`` or
``age`` column. A case the recogniser cannot read (no face, no speech) counts as wrong and is
listed in ``errors`` with its reason.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

from agent.think.prompts import EMOTION_FAMILY
from tools.common.errors import ErrorCode, MMChatError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
GENDERS = {"female": "female", "f": "female", "woman": "female", "male": "male", "m": "male", "man": "male"}


def _bad(msg: str) -> MMChatError:
    return MMChatError(msg, ErrorCode.BAD_INPUT)


def labelled_images(root: str | Path, normalise: Callable[[str], str | None]) -> list[tuple[Path, str]]:
    """(image, label) for ``root/<label>/*``; folders whose name is no known label are refused."""
    d = Path(root)
    if not d.is_dir():
        raise _bad(f"{d}: not a folder of <label>/ sub-folders")
    cases = []
    for sub in sorted(p for p in d.iterdir() if p.is_dir()):
        label = normalise(sub.name)
        if label is None:
            raise _bad(f"{sub}: '{sub.name}' is not a label this evaluation knows")
        cases += [(f, label) for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not cases:
        raise _bad(f"{d}: no images in <label>/ sub-folders")
    return cases


def read_csv_cases(path: str | Path, column: str) -> list[tuple[Path, str]]:
    p = Path(path)
    if not p.is_file():
        raise _bad(f"{p}: file not found")
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0] or not ({"file", "path"} & set(rows[0])):
        raise _bad(f"{p}: need a header with 'file' (or 'path') and '{column}' columns")
    return [((p.parent / (r.get("file") or r.get("path") or "")).resolve(), (r[column] or "").strip()) for r in rows]


def read_text_cases(path: str | Path) -> list[tuple[str, list[str]]]:
    p = Path(path)
    if not p.is_file():
        raise _bad(f"{p}: file not found")
    cases = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, want = row["text"], row["emotion"]
        except (ValueError, KeyError, TypeError):
            raise _bad(f"{p}:{i}: each line must be {{\"text\": ..., \"emotion\": [labels]}}") from None
        labels = [emotion_label(w) for w in ([want] if isinstance(want, str) else want)]
        if not labels or None in labels:
            raise _bad(f"{p}:{i}: unknown emotion label in {want}")
        cases.append((str(text), labels))
    if not cases:
        raise _bad(f"{p}: no cases")
    return cases  # type: ignore[return-value]


def emotion_label(name: str) -> str | None:
    return EMOTION_FAMILY.get(name.strip().lower())


def gender_label(name: str) -> str | None:
    return GENDERS.get(name.strip().lower())


def score(cases: Iterable[tuple[str, Any, list[str]]], predict: Callable[[Any], tuple[str | None, str | None]]
          ) -> dict[str, Any]:
    """``cases``: (id, input, acceptable labels; the first is the class counted in ``per_class``)."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    errors, n, right = [], 0, 0
    for case_id, x, want in cases:
        got, reason = predict(x)
        ok = got in want
        n, right = n + 1, right + ok
        per[want[0]][0] += 1
        per[want[0]][1] += ok
        if not ok:
            errors.append({"case": case_id, "expected": want, "got": got, **({"reason": reason} if reason else {})})
    per_class = {k: {"n": v[0], "correct": v[1], "accuracy": round(v[1] / v[0], 4)} for k, v in sorted(per.items())}
    macro = sum(c["accuracy"] for c in per_class.values()) / max(len(per_class), 1)
    return {"accuracy": round(right / max(n, 1), 4), "macro_accuracy": round(macro, 4), "n": n,
            "per_class": per_class, "errors": errors}


def age_score(cases: Iterable[tuple[str, Any, float]], predict: Callable[[Any], tuple[int | None, str | None]]
              ) -> dict[str, Any]:
    n = w5 = w10 = 0
    abs_err, errors = [], []
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case_id, x, true_age in cases:
        got, reason = predict(x)
        n += 1
        decade = f"{int(true_age // 10) * 10}s"
        per[decade][0] += 1
        if got is None:
            errors.append({"case": case_id, "expected": true_age, "got": None, "reason": reason})
            continue
        d = abs(got - true_age)
        abs_err.append(d)
        w5, w10 = w5 + (d <= 5), w10 + (d <= 10)
        per[decade][1] += d <= 10
        if d > 5:
            errors.append({"case": case_id, "expected": true_age, "got": got})
    per_class = {k: {"n": v[0], "within_10": round(v[1] / v[0], 4)} for k, v in sorted(per.items())}
    return {"within_5": round(w5 / max(n, 1), 4), "within_10": round(w10 / max(n, 1), 4),
            "accuracy": round(w10 / max(n, 1), 4), "mae": round(sum(abs_err) / len(abs_err), 2) if abs_err else None,
            "n": n, "per_class": per_class, "errors": errors}

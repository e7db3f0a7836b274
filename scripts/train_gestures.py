"""Train the static and dynamic gesture classifiers from the shared CSVs.

Writes tools/vision/gesture_static.npz and gesture_dynamic.npz (plain arrays)
and prints held-out accuracy on a fixed stratified 25 % split (seed 42).
Usage: .venv/bin/python scripts/train_gestures.py [--data ../shared/testdata/gestures]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.neural_network import MLPClassifier  # noqa: E402

from tools.vision import gestures as g  # noqa: E402
from tools.vision.mlp import NumpyMLP  # noqa: E402

TASKS = (  # csv, features, labels, output, hidden layers
    ("hand_keypoints.csv", 2 * g.N_LANDMARKS, g.STATIC_LABELS, g.STATIC_MODEL, (64, 32)),
    ("point_history.csv", 2 * g.HISTORY_LEN, g.DYNAMIC_LABELS, g.DYNAMIC_MODEL, (64, 32)),
)


def train(csv: Path, n_features: int, labels: tuple[str, ...], out: Path, hidden: tuple[int, ...]) -> dict:
    x, y = g.load_csv(csv, n_features)
    train_idx, test_idx = g.held_out_split(y)
    mlp = MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-4, max_iter=800, random_state=g.SPLIT_SEED)
    mlp.fit(x[train_idx], y[train_idx])
    report = g.evaluate(NumpyMLP.from_sklearn(mlp, labels), x[test_idx], y[test_idx])
    model = NumpyMLP.from_sklearn(mlp, labels, source=csv.name, split_seed=g.SPLIT_SEED,
                                  test_fraction=g.TEST_FRACTION, held_out_accuracy=report["accuracy"],
                                  held_out_n=report["n"], train_n=len(train_idx))
    model.save(out)
    return {"model": out.name, **report}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "testdata" / "gestures")
    a = ap.parse_args()
    for csv, n, labels, out, hidden in TASKS:
        print(json.dumps(train(a.data / csv, n, labels, out, hidden)))


if __name__ == "__main__":
    main()

"""Hand gestures: static hand shapes and fingertip motions, plus a mode debouncer.

Features follow the layout of ``testdata/gestures/*.csv`` (MediaPipe Hands,
kinivi/hand-gesture-recognition-mediapipe): a static row is the 21 landmarks
relative to the wrist, flattened and scaled to max-abs 1; a dynamic row is 16
fingertip points relative to the first one, divided by the image size.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from tools.common.errors import ErrorCode, MMChatError
from tools.vision.mlp import Classifier, NumpyMLP

HERE = Path(__file__).resolve().parent
STATIC_MODEL = HERE / "gesture_static.npz"
DYNAMIC_MODEL = HERE / "gesture_dynamic.npz"
STATIC_LABELS = ("Open", "Close", "Pointer", "OK")
DYNAMIC_LABELS = ("Stop", "Clockwise", "Counter Clockwise", "Move")
N_LANDMARKS = 21
HISTORY_LEN = 16
SPLIT_SEED = 42
TEST_FRACTION = 0.25


def static_features(points: np.ndarray) -> np.ndarray:
    """(21, 2+) landmark coordinates (pixels or normalised) -> 42 features."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    if p.shape != (N_LANDMARKS, 2):
        raise ValueError(f"expected {N_LANDMARKS} landmarks, got {p.shape[0]}")
    rel = (p - p[0]).reshape(-1)
    scale = np.abs(rel).max()
    return (rel / scale if scale > 0 else rel).astype(np.float32)


def dynamic_features(history: Iterable[tuple[float, float]], width: int, height: int) -> np.ndarray:
    """Last 16 fingertip positions in pixels -> 32 features (relative to the first, / image size)."""
    p = np.asarray(list(history), dtype=np.float64).reshape(-1, 2)
    if len(p) != HISTORY_LEN:
        raise ValueError(f"expected {HISTORY_LEN} points, got {len(p)}")
    rel = (p - p[0]) / np.array([width, height], dtype=np.float64)
    return rel.reshape(-1).astype(np.float32)


def load_csv(path: str | Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``label, f1..fN`` -> (X float32, y int); a malformed file is a typed error."""
    p = Path(path)
    if not p.is_file():
        raise MMChatError(f"{p}: file not found", ErrorCode.BAD_INPUT)
    try:
        data = np.loadtxt(p, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise MMChatError(f"{p}: not a numeric CSV ({e})", ErrorCode.BAD_INPUT) from None
    if data.shape[0] == 0 or data.shape[1] != n_features + 1:
        raise MMChatError(f"{p}: expected rows of 1 label + {n_features} values, got {data.shape[1]} columns",
                          ErrorCode.BAD_INPUT)
    return data[:, 1:].astype(np.float32), data[:, 0].astype(int)


def held_out_split(y: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices, the same in training, tests and reports."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=seed, stratify=y)
    return np.sort(train), np.sort(test)


def evaluate(model: Classifier, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, row count and confusion matrix (rows: true label, columns: predicted)."""
    k = len(model.labels)
    if y.min() < 0 or y.max() >= k:
        raise MMChatError(f"labels must be 0..{k - 1}", ErrorCode.BAD_INPUT)
    pred = model.predict_proba(x).argmax(axis=1)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    return {"accuracy": round(float((pred == y).mean()), 4), "n": int(len(y)),
            "labels": list(model.labels), "confusion": confusion.tolist()}


def load_model(path: Path) -> NumpyMLP:
    if not path.is_file():
        raise MMChatError(f"{path.name} missing: run scripts/train_gestures.py", ErrorCode.MODEL_MISSING)
    return NumpyMLP.load(path)


@dataclass(frozen=True)
class Gesture:
    label: str
    score: float


class GestureRecognizer:
    """Static shape per hand; fingertip motion of a pointing hand over the last 16 frames."""

    def __init__(self, static: Classifier | None = None, dynamic: Classifier | None = None,
                 min_score: float = 0.6) -> None:
        self.static = static or load_model(STATIC_MODEL)
        self.dynamic = dynamic or load_model(DYNAMIC_MODEL)
        self.min_score = min_score
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY_LEN)

    def shape(self, points: np.ndarray) -> Gesture:
        """Static gesture of one hand ((21, 2+) landmarks); below ``min_score`` -> 'Unknown'."""
        prob = self.static.predict_proba(static_features(points))[0]
        i = int(prob.argmax())
        return Gesture(self.static.labels[i] if prob[i] >= self.min_score else "Unknown", float(prob[i]))

    def motion(self, fingertip: tuple[float, float] | None, width: int, height: int) -> Gesture | None:
        """Feed the index fingertip (pixels; None when no pointing hand); a motion once 16 are seen."""
        if fingertip is None:
            self.history.clear()
            return None
        self.history.append(fingertip)
        if len(self.history) < HISTORY_LEN:
            return None
        prob = self.dynamic.predict_proba(dynamic_features(self.history, width, height))[0]
        i = int(prob.argmax())
        return Gesture(self.dynamic.labels[i], float(prob[i]))


class GestureDebouncer:
    """Turns per-frame gestures into actions once one is held long enough.

    An action fires once when the same mapped gesture has been seen for at
    least ``hold_frames`` frames and ``hold_ms`` milliseconds; it re-arms when
    the gesture changes or the hand leaves.
    """

    def __init__(self, mapping: Mapping[Any, str], hold_ms: float, hold_frames: int) -> None:
        self.mapping = dict(mapping)
        self.hold_ms = hold_ms
        self.hold_frames = hold_frames
        self._current: str | None = None
        self._since = 0.0
        self._frames = 0
        self._fired = False

    def update(self, gesture: str | None, t_ms: float) -> str | None:
        """The action to take now (e.g. 'privacy'), or None."""
        if gesture not in self.mapping:
            gesture = None
        if gesture != self._current:
            self._current, self._since, self._frames, self._fired = gesture, t_ms, 0, False
        if gesture is None:
            return None
        self._frames += 1
        if not self._fired and self._frames >= self.hold_frames and t_ms - self._since >= self.hold_ms:
            self._fired = True
            return self.mapping[gesture]
        return None

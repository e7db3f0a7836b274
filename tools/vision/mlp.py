"""A small dense classifier stored as plain arrays (.npz, no pickle).

Training uses scikit-learn's ``MLPClassifier`` (see ``scripts/train_*.py``);
inference is a few numpy matrix products, so the runtime needs no sklearn
model object and loading never executes stored code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Classifier(Protocol):
    """Anything that maps feature rows to class probabilities."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class NumpyMLP:
    """ReLU MLP with a softmax output: ``weights[i]`` is (in, out)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    meta: dict[str, Any]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        h = np.atleast_2d(np.asarray(x, dtype=np.float32))
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)

    @classmethod
    def from_sklearn(cls, model: Any, labels: tuple[str, ...], **meta: Any) -> "NumpyMLP":
        """Copy a fitted ``MLPClassifier`` (relu hidden layers, softmax output)."""
        if model.activation != "relu" or model.out_activation_ != "softmax":
            raise ValueError("only relu hidden layers with a softmax output are supported")
        return cls(tuple(np.asarray(w, np.float32) for w in model.coefs_),
                   tuple(np.asarray(b, np.float32) for b in model.intercepts_), tuple(labels), dict(meta))

    def save(self, path: str | Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays |= {f"b{i}": b for i, b in enumerate(self.biases)}
        header = json.dumps({"labels": list(self.labels), "meta": self.meta})
        np.savez_compressed(path, header=np.array(header), **arrays)  # type: ignore[arg-type]  # (stubs: allow_pickle)

    @classmethod
    def load(cls, path: str | Path) -> "NumpyMLP":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            n = sum(1 for k in z.files if k.startswith("w"))
            return cls(tuple(z[f"w{i}"] for i in range(n)), tuple(z[f"b{i}"] for i in range(n)),
                       tuple(header["labels"]), header["meta"])

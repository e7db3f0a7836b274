"""Face identification on the shared faces: probe accuracy, false accepts on strangers, and test frames.

* ``encode_folder`` - one encoding per usable photo of ``<set>/<name>/*`` (HOG + dlib).
* ``augment`` - flips, crops and brightness changes of one photo (the imbalance test's many photos).
* ``quality`` - per classifier kind: accuracy on the labelled probes (two_people.jpg: Obama left, Biden
  right; obama_small.jpg; each two-photo person's photos held out in turn) and false accepts
  leave-one-person-out (each enrolled person, left out of training, probed with all their faces and
  messi5.jpg's stranger: every one must come out unknown).
* ``tiled_frame`` - a 640x480 frame of 1..6 face crops (the speed benchmark).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.common.config import Settings
from agent.identity.face_classifier import FaceClassifier
from agent.identity.face_sync import IMAGE_EXT
from agent.identity.faces import DlibFaceEncoder, FaceEncoder, read_image

ENROLL, PROBES = "faces/enroll", "faces/probe"
STRANGERS = ["scenes/messi5.jpg"]  # nobody enrolled
SIZE = (640, 480)


def photos(folder: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT)
            for d in sorted(folder.iterdir()) if d.is_dir()}


def encode_folder(folder: Path, encoder: FaceEncoder) -> dict[str, list[np.ndarray]]:
    """``{name: [encoding per photo showing exactly one face]}``."""
    out: dict[str, list[np.ndarray]] = {}
    for name, files in photos(folder).items():
        scans = [encoder.scan(read_image(p)) for p in files]
        out[name] = [s.encodings[0] for s in scans if s.status == "ok"]
    return out


def augment(rgb: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` variants of one photo: mirror, random crops (80-100 %) and brightness (x0.7-1.3)."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    out = []
    for i in range(n):
        img = rgb[:, ::-1] if i % 2 else rgb
        s = rng.uniform(0.8, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = np.clip(img[y:y + ch, x:x + cw].astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255)
        out.append(np.ascontiguousarray(img.astype(np.uint8)))
    return out


def labelled_probes(settings: Settings, encoder: FaceEncoder) -> list[tuple[str, np.ndarray]]:
    """(true name, encoding) of the probe photos' faces."""
    probe = settings.testdata_dir / PROBES
    two = encoder.scan(read_image(probe / "two_people.jpg"))
    order = np.argsort([b[3] for b in two.boxes])  # left to right: Obama, then Biden
    out = [(name, two.encodings[i]) for name, i in zip(["obama", "biden"], order)]
    small = encoder.scan(read_image(probe / "obama_small.jpg"))
    return out + [("obama", e) for e in small.encodings[:1]]


def stranger_faces(settings: Settings, encoder: FaceEncoder) -> list[np.ndarray]:
    return [e for p in STRANGERS for e in encoder.scan(read_image(settings.testdata_dir / p)).encodings]


def quality(settings: Settings, kind: str, encoder: FaceEncoder | None = None,
            enrolled: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Accuracy on the labelled probes and false accepts leave-one-person-out, for one classifier kind
    (``enrolled``: the enrol folder's encodings, if already computed)."""
    encoder = encoder or DlibFaceEncoder(settings.identity.face_upsample)
    cfg = settings.face_id.model_copy(update={"classifier": kind})
    if enrolled is None:
        enrolled = {k: np.array(v) for k, v in encode_folder(settings.testdata_dir / ENROLL, encoder).items() if v}
    probes = labelled_probes(settings, encoder)
    held_out = [(n, i) for n, e in enrolled.items() if len(e) >= 2 for i in range(len(e))]
    clf = FaceClassifier.train(enrolled, cfg)
    right = sum(m.user == n for (n, _), m in zip(probes, clf.predict(np.array([e for _, e in probes]))))
    for name, i in held_out:  # one photo of a two-photo person held out, the rest enrolled
        rest = {**enrolled, name: np.delete(enrolled[name], i, axis=0)}
        right += FaceClassifier.train(rest, cfg).predict(enrolled[name][i:i + 1])[0].user == name
    errors, trials = [], 0
    strangers = stranger_faces(settings, encoder)
    for name in enrolled:  # leave one person out: all their faces are strangers now
        others = {k: v for k, v in enrolled.items() if k != name}
        faces = list(enrolled[name]) + [e for n, e in probes if n == name] + strangers
        for m in FaceClassifier.train(others, cfg).predict(np.array(faces)):
            trials += 1
            if m.user is not None:
                errors.append(f"{name} accepted as {m.user} (distance {m.distance:.3f})")
    n = len(probes) + len(held_out)
    return {"classifier": kind, "probe_accuracy": round(right / n, 4), "probe_n": n,
            "false_accepts": len(errors), "stranger_trials": trials, "errors": errors,
            "max_distance": cfg.max_distance}


def face_crops(settings: Settings, encoder: FaceEncoder, n: int = 6) -> list[np.ndarray]:
    """BGR crops (face box + 60 % margin) of ``n`` different enrolled people's first photo."""
    crops = []
    for files in list(photos(settings.testdata_dir / ENROLL).values())[:n]:
        rgb = read_image(files[0])
        top, right, bottom, left = encoder.scan(rgb).boxes[0]
        m = int(0.6 * (bottom - top))
        crop = rgb[max(top - m, 0):bottom + m, max(left - m, 0):right + m]
        crops.append(np.ascontiguousarray(crop[:, :, ::-1]))
    return crops


def tiled_frame(crops: list[np.ndarray], n: int, shift: int = 0) -> np.ndarray:
    """A 640x480 BGR frame with ``n`` (1..6) crops on a 3x2 grid (one: centred), moved ``shift`` px right."""
    frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
    tw, th = SIZE[0] // 3, SIZE[1] // 2
    cells = [(1, 0.5)] if n == 1 else [(i % 3, i // 3) for i in range(n)]
    for crop, (cx, cy) in zip(crops[:n], cells):
        tile = cv2.resize(crop, (tw - 20, th - 20))
        x, y = int(cx * tw) + 10 + shift, int(cy * th) + 10
        x = min(max(x, 0), SIZE[0] - tile.shape[1])
        frame[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return frame

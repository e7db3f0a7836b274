"""Benchmark group "faces_id": naming everyone in view (``main.py bench --only faces_id``).

Frames are 640x480 tilings of 1, 3 and 6 enrolled people's face crops (agent/evals/faces_id.py),
moved a few pixels each frame so the tracker has work. Figures:

* ``faces_id_encode_ms_per_face`` - dlib encoding of one face at a known box (the recognition cost).
* ``faces_id_fps_<n>_faces`` - face finder + tracking + naming (new tracks at once, re-checks every
  ``face_id.recheck_s``), frames per second; ``recognitions`` says how many encodings that took.
* ``faces_id_stage_fps_<n>_faces`` - the whole camera-stage frame (objects, faces, emotion, hands, names).
* ``faces_id_quality_<svm|knn>`` - probe accuracy and leave-one-person-out false accepts (not timed).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.common.config import Settings
from agent.evals.faces_id import ENROLL, encode_folder, face_crops, quality, tiled_frame
from agent.evals.stats import figure
from agent.identity.face_classifier import FaceClassifier
from agent.identity.faces import DlibFaceEncoder

COUNTS = (1, 3, 6)
FRAMES, STAGE_FRAMES = 60, 30


def _frames(crops: list[np.ndarray], n: int, count: int) -> list[np.ndarray]:
    return [tiled_frame(crops, n, shift=int(8 * np.sin(i / 4))) for i in range(count)]


def bench_faces_id(settings: Settings, repeat: int = 3) -> dict:
    from tools.vision.camera import FrameProcessor
    from tools.vision.faces import FaceFinder
    from tools.vision.who import FaceNamer, dlib_box

    encoder = DlibFaceEncoder(settings.identity.face_upsample)
    enrolled = {k: np.array(v) for k, v in encode_folder(settings.testdata_dir / ENROLL, encoder).items() if v}
    clf = FaceClassifier.train(enrolled, settings.face_id)
    crops = face_crops(settings, encoder, max(COUNTS))
    out: dict = {}
    finder = FaceFinder(max(COUNTS), settings.vision.min_detection_confidence)
    per_face: list[float] = []
    for n in COUNTS:
        frames = _frames(crops, n, FRAMES)
        fps, found, named, recognitions = [], 0, 0, 0
        for _ in range(max(repeat, 1)):
            namer = FaceNamer(clf, encoder, settings.face_id, video=True)
            t0 = time.perf_counter()
            for i, f in enumerate(frames):
                rgb = np.ascontiguousarray(f[:, :, ::-1])
                faces = [{"box": [x, y, x + w, y + h]} for (x, y, w, h) in (ff.box for ff in finder.find(rgb))]
                faces = namer.name(f, faces, t=i / 15.0)  # stream time as if the camera ran at 15 fps
                found += len(faces)
                named += sum(1 for x in faces if x["user"])
            fps.append(len(frames) / (time.perf_counter() - t0))
            recognitions += namer.recognised
            boxes = [dlib_box(x["box"]) for x in faces]
            if boxes:
                t1 = time.perf_counter()
                encoder.encode_boxes(rgb, boxes)
                per_face.append(1000 * (time.perf_counter() - t1) / len(boxes))
        runs = len(frames) * max(repeat, 1)
        out[f"faces_id_fps_{n}_faces"] = figure(
            fps, unit="fps", frame="640x480", frames=len(frames), faces_found=round(found / runs, 2),
            faces_named=round(named / runs, 2), recognitions=recognitions // max(repeat, 1),
            recheck_s=settings.face_id.recheck_s)
    finder.close()
    out["faces_id_encode_ms_per_face"] = figure(per_face, unit="ms", frame="640x480")
    out.update(_stage(settings, crops, repeat, FrameProcessor, FaceNamer(clf, encoder, settings.face_id, True)))
    for kind in ("svm", "knn"):
        out[f"faces_id_quality_{kind}"] = quality(settings, kind, encoder, enrolled)
    return out


def _stage(settings: Settings, crops: list[np.ndarray], repeat: int, processor_cls: Any, namer: object) -> dict:
    """FPS of the whole camera-stage frame (max_faces raised to 6 so every face is analysed), the shared
    faces enrolled (``namer``)."""
    vision = settings.vision.model_copy(update={"max_faces": max(settings.vision.max_faces, max(COUNTS))})
    cfg = settings.model_copy(update={"vision": vision})
    out = {}
    processor = processor_cls.from_settings(cfg, video=True)
    processor.namer = namer
    for n in COUNTS:
        frames = _frames(crops, n, STAGE_FRAMES)
        fps, named = [], 0
        for _ in range(max(repeat, 1)):
            processor.reset()
            t0 = time.perf_counter()
            for i, f in enumerate(frames):
                snap = processor.process(f, t=i / 15.0)
                named += sum(1 for x in snap.faces if x.get("user"))
            fps.append(len(frames) / (time.perf_counter() - t0))
        out[f"faces_id_stage_fps_{n}_faces"] = figure(
            fps, unit="fps", frame="640x480", frames=len(frames), max_faces=vision.max_faces,
            faces_named=round(named / (len(frames) * max(repeat, 1)), 2))
    return out

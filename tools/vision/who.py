"""Everyone in view: enrolled names on the camera stage's faces, kept on tracked faces between recognitions.

``FaceNamer.name`` adds ``user`` (a profile name or None) and ``user_score`` (1 - dlib
distance to that person's nearest enrolled photo) to each face dict of a frame. In
video mode faces are tracked (the Kalman/IoU ``MultiObjectTracker``, label ``face``):
a new track is recognised at once, so is one whose box jumped (IoU with its last box
below 0.5: a cut, or one person passing another); a known one keeps its name and is
recognised again every ``face_id.recheck_s`` seconds, at most ``recheck_per_frame`` per
frame so the cost is spread. A re-check that finds the face still closest to the same
person, only too far for a fresh naming (a turned head), keeps the name; a fresh naming
never has that slack. A still image (``video=False``) recognises every face.
Encoding uses the face finder's boxes, so dlib's own detector never runs here.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from tools.vision.detector import Detection
from tools.vision.tracking import MultiObjectTracker, iou_matrix

if TYPE_CHECKING:
    from tools.common.settings import FaceIdSettings

log = logging.getLogger(__name__)
TRACK_IOU, TRACK_MAX_MISSED = 0.3, 5  # a face track survives 5 frames without its face
JUMP_IOU = 0.5  # a face overlapping its track's last box less than this may be someone else: recognise again


class BoxEncoder(Protocol):
    def encode_boxes(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray: ...


class FaceMatch(Protocol):
    """One recognised face: the accepted ``user`` (None: unknown), the ``closest`` person, a ``score``."""

    @property
    def user(self) -> str | None: ...
    @property
    def closest(self) -> str | None: ...
    @property
    def score(self) -> float | None: ...


class FaceClassifier(Protocol):
    """The enrolled faces (agent/identity/face_classifier.py builds one from the profiles)."""

    names: list[str]

    def predict(self, encodings: np.ndarray) -> Sequence[FaceMatch]: ...


def dlib_box(box: Sequence[float]) -> tuple[int, int, int, int]:
    """[x1, y1, x2, y2] -> dlib's (top, right, bottom, left)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return y1, x2, y2, x1


class FaceNamer:
    """Names the faces of successive frames of one stream (or of unrelated stills)."""

    def __init__(self, classifier: FaceClassifier, encoder: BoxEncoder | None, cfg: "FaceIdSettings",
                 video: bool, make_encoder: Callable[[], BoxEncoder] | None = None) -> None:
        """Without ``encoder``, ``make_encoder`` builds one at the first face (dlib loads only when needed)."""
        if encoder is None and make_encoder is None:
            raise TypeError("FaceNamer needs an encoder or make_encoder")
        self.classifier, self.cfg, self.video = classifier, cfg, video
        self._encoder, self._make_encoder = encoder, make_encoder
        self.tracker = MultiObjectTracker(0.0, TRACK_IOU, TRACK_MAX_MISSED)
        self.known: dict[int, tuple[FaceMatch, float]] = {}  # track id -> (last recognition, its time)
        self.recognised = 0  # faces encoded so far

    @property
    def encoder(self) -> BoxEncoder:
        if self._encoder is None:
            assert self._make_encoder is not None
            self._encoder = self._make_encoder()
        return self._encoder

    def reset(self) -> None:
        self.tracker = MultiObjectTracker(0.0, TRACK_IOU, TRACK_MAX_MISSED)
        self.known.clear()

    def _track(self, faces: list[dict[str, Any]]) -> tuple[list[int | None], set[int]]:
        """The track id of each face (Hungarian on IoU against this frame's updated tracks) and the
        indices of faces whose box jumped away from their track's last box."""
        last = {t.id: t.box for t in self.tracker.tracks}
        frame = self.tracker.step([Detection("face", float(f.get("score", 1.0)), tuple(f["box"])) for f in faces])
        ids: list[int | None] = [None] * len(faces)
        if faces and frame.objects:
            iou = iou_matrix(np.array([f["box"] for f in faces], float).reshape(-1, 4),
                             np.array([o.box for o in frame.objects], float).reshape(-1, 4))
            for r, c in zip(*linear_sum_assignment(-iou)):
                if iou[r, c] > 0:
                    ids[r] = frame.objects[c].track_id
        alive = {t.id for t in self.tracker.tracks}
        for tid in [k for k in self.known if k not in alive]:
            del self.known[tid]
        jumped = {i for i, tid in enumerate(ids) if tid in last and
                  iou_matrix(np.array([faces[i]["box"]], float), np.array([last[tid]], float))[0, 0] < JUMP_IOU}
        return ids, jumped

    def name(self, bgr: np.ndarray, faces: list[dict[str, Any]], t: float) -> list[dict[str, Any]]:
        """``faces`` (dicts with ``box`` [x1, y1, x2, y2]) with ``user``, ``user_score`` (and ``track_id`` in video)."""
        if not self.classifier.names:  # nobody enrolled with a face: nothing to compare with
            return [{**f, "user": None, "user_score": None} for f in faces]
        ids, jumped = self._track(faces) if self.video else ([None] * len(faces), set())
        todo = [i for i, tid in enumerate(ids) if tid is None or tid not in self.known or i in jumped]
        due = sorted((self.known[tid][1], i) for i, tid in enumerate(ids)
                     if i not in todo and tid in self.known and t - self.known[tid][1] >= self.cfg.recheck_s)
        rechecks = {i for _, i in due[: self.cfg.recheck_per_frame]}
        todo += sorted(rechecks)
        matches: dict[int, FaceMatch] = {}
        if todo:
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            encs = self.encoder.encode_boxes(rgb, [dlib_box(faces[i]["box"]) for i in todo])
            self.recognised += len(todo)
            for i, m in zip(todo, self.classifier.predict(encs)):
                tid = ids[i]
                before = self.known[tid][0] if i in rechecks and tid is not None else None
                if before is not None and before.user and m.user is None and m.closest == before.user:
                    m = before  # an unbroken track that still looks most like them (e.g. turned away): keep it
                matches[i] = m
                if tid is not None:
                    self.known[tid] = (m, t)
        out = []
        for i, f in enumerate(faces):
            m = matches.get(i) or self.known[ids[i]][0]  # type: ignore[index]
            extra = {"track_id": ids[i]} if self.video else {}
            out.append({**f, "user": m.user, "user_score": m.score, **extra})
        return out


def pretty(name: str) -> str:
    """A profile name as spoken: 'lin_manuel_miranda' -> 'Lin Manuel Miranda'."""
    return " ".join(w[:1].upper() + w[1:] for w in name.replace("_", " ").replace("-", " ").split()) or name


_COUNT = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def who_is_here(faces: Sequence[dict[str, Any]]) -> tuple[str | None, dict[str, Any] | None]:
    """("Obama and one person I don't know are here.", {known, unknown}) for named faces; (None, None) when
    the faces were not run through recognition."""
    named = [f for f in faces if "user" in f]
    if not named:
        return None, None
    known = sorted({f["user"] for f in named if f["user"]})
    unknown = sum(1 for f in named if not f["user"])
    parts = [pretty(n) for n in known]
    if unknown:
        n = _COUNT.get(unknown, str(unknown))
        parts.append(f"{n} {'person' if unknown == 1 else 'people'} I don't know")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    single = len(known) + unknown == 1
    sentence = text[:1].upper() + text[1:] + (" is here." if single else " are here.")
    return sentence, {"known": known, "unknown": unknown}

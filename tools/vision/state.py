"""The live perception state and the ``Perception`` service the LLM tools read.

The camera stage (``tools/vision/camera.py``) publishes one immutable
``Snapshot`` per analysed frame into a ``PerceptionState``; ``PerceptionService``
answers ``read_emotion``, ``describe_scene`` and ``track_object`` from the
newest snapshot. A live snapshot older than ``max_age_s`` is stale and the
tools say so instead of describing an old picture; a still image (``live=False``)
never ages. Face boxes everywhere here are ``[x1, y1, x2, y2]`` pixels, the
same as object boxes (``analysis_json`` adapts the face analyser's x, y, w, h).
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, cast

from tools.base import ToolResult
from tools.vision.detector import COCO_LABELS, match_label
from tools.vision.scene import describe_scene, place
from tools.vision.tracking import FollowState, ObjectFollower, ObjectPipeline, TrackedObject, TrackFrame

DEFAULT_MAX_AGE_S = 2.0


class FrameAnalysis(Protocol):
    def to_json(self) -> dict[str, Any]: ...  # {"faces": [{box: x, y, w, h, ...}], "hands": [...], ...}


def xywh_to_xyxy(box: Any) -> list[float]:
    """(x, y, w, h) -> [x1, y1, x2, y2]."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def analysis_json(analysis: FrameAnalysis) -> dict[str, Any]:
    """The face/hand analyser's JSON with face boxes as [x1, y1, x2, y2] pixels (like object boxes)."""
    out = analysis.to_json()
    out["faces"] = [{**f, "box": xywh_to_xyxy(f["box"])} for f in out.get("faces", [])]
    out.setdefault("hands", [])
    return out


def _area(box: Any) -> float:
    return max(float(box[2]) - float(box[0]), 0.0) * max(float(box[3]) - float(box[1]), 0.0)


@dataclass(frozen=True)
class Snapshot:
    """What was seen in one analysed frame; ``t`` is the frame's capture time (``time.monotonic``)."""

    t: float
    width: int
    height: int
    faces: tuple[dict[str, Any], ...] = ()  # {box [x1, y1, x2, y2], emotion, emotion_scores}
    hands: tuple[dict[str, Any], ...] = ()  # {gesture, score, handedness, motion}
    objects: tuple[TrackedObject, ...] = ()
    live: bool = True  # False for a still photo, which does not go stale
    frame_index: int = 0
    action: str | None = None  # debounced gesture action, if any

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.t

    def main_face(self) -> dict[str, Any] | None:
        """The largest (usually nearest) face."""
        return max(self.faces, key=lambda f: _area(f["box"]), default=None)

    def frame_json(self, t: float) -> dict[str, Any]:
        """One entry of ``perceive``'s ``frames`` (CLI.md): ``t`` is the frame's time in its clip."""
        return {"t": round(t, 3), "faces": list(self.faces), "hands": list(self.hands),
                "objects": [o.as_json() for o in self.objects]}

    def summary(self) -> str:
        """describe_scene's grounded one-line summary of this frame."""
        from tools.vision.scene import describe_scene

        return describe_scene(self.objects, (self.width, self.height), list(self.faces)).summary


class PerceptionState:
    """Thread-safe holder of the newest snapshot and of the object being followed.

    A follow request carries a generation number so the camera stage can tell a
    new request from its own status updates.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._follow: FollowState | None = None
        self._follow_gen = 0
        self._published = threading.Event()

    def publish(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
        self._published.set()

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._snapshot

    def wait(self, timeout: float) -> bool:
        """Block until a first snapshot exists (or ``timeout`` seconds pass)."""
        return self._published.wait(timeout)

    def request_follow(self, target: FollowState | None) -> int:
        """Start following ``target`` (None stops); returns the request's generation."""
        with self._lock:
            self._follow_gen += 1
            self._follow = target
            return self._follow_gen

    def follow_request(self) -> tuple[int, FollowState | None]:
        with self._lock:
            return self._follow_gen, self._follow

    def update_follow(self, gen: int, status: FollowState) -> None:
        """The camera stage's progress on request ``gen`` (ignored if a newer request exists)."""
        with self._lock:
            if gen == self._follow_gen:
                self._follow = status


class TrackTap:
    """An ``ObjectPipeline`` stand-in for ``ObjectFollower`` that keeps the last ``TrackFrame``.

    ``ObjectFollower.step`` only returns its own state; the camera stage also
    needs every tracked object of the frame, and ``track`` reuses the
    follower's choice rule on an already analysed frame.
    """

    def __init__(self, step: Callable[[Any], TrackFrame]) -> None:
        self._step, self.last = step, TrackFrame([])

    def step(self, frame: Any) -> TrackFrame:
        self.last = self._step(frame)
        return self.last


def follower(step: Callable[[Any], TrackFrame], target: FollowState) -> tuple[ObjectFollower, TrackTap]:
    """An ``ObjectFollower`` resuming ``target`` over ``step``, and the tap holding each frame's objects."""
    tap = TrackTap(step)
    f = ObjectFollower(cast(ObjectPipeline, tap), target.label)
    f.state = target
    return f, tap


class PerceptionService:
    """Implements ``tools.base.Perception`` over a ``PerceptionState``."""

    def __init__(self, state: PerceptionState | None = None, max_age_s: float = DEFAULT_MAX_AGE_S,
                 labels: tuple[str, ...] = COCO_LABELS) -> None:
        self.state = state or PerceptionState()
        self.max_age_s = max_age_s
        self.labels = labels

    def _fresh(self) -> tuple[Snapshot | None, ToolResult | None]:
        """The newest usable snapshot, or the ToolResult explaining why there is none."""
        snap = self.state.latest()
        if snap is None:
            return None, ToolResult(ok=False, summary="The camera hasn't given me a picture yet.",
                                    data={"status": "no-frame"})
        age = snap.age()
        if snap.live and age > self.max_age_s:
            return None, ToolResult(
                ok=False, summary=f"My last camera picture is {age:.0f} seconds old, so I can't tell "
                                  "what is there right now.",
                data={"status": "stale", "age_s": round(age, 2), "max_age_s": self.max_age_s})
        return snap, None

    @staticmethod
    def _meta(snap: Snapshot) -> dict[str, Any]:
        return {"age_s": round(max(snap.age(), 0.0), 3) if snap.live else None, "live": snap.live,
                "frame": {"width": snap.width, "height": snap.height, "index": snap.frame_index}}

    def user_emotion(self) -> str | None:
        """The main face's emotion in a fresh snapshot (for the turn's reply style), else None."""
        snap, _ = self._fresh()
        face = snap.main_face() if snap else None
        return face["emotion"] if face else None

    def emotion(self) -> ToolResult:
        snap, problem = self._fresh()
        if snap is None:
            return cast(ToolResult, problem)
        face = snap.main_face()
        if face is None:
            return ToolResult(ok=False, summary="I can't see your face right now.",
                              data={"status": "no-face", **self._meta(snap)})
        scores = dict(sorted(face["emotion_scores"].items(), key=lambda kv: -kv[1]))
        emotion = face["emotion"]
        others = f" I can see {len(snap.faces)} faces; this is the nearest." if len(snap.faces) > 1 else ""
        summary = f"You look {emotion} ({scores.get(emotion, 0.0):.0%} sure).{others}"
        return ToolResult(ok=True, summary=summary,
                          data={"emotion": emotion, "scores": scores, "box": face["box"],
                                "faces": len(snap.faces), **self._meta(snap)})

    def scene(self) -> ToolResult:
        snap, problem = self._fresh()
        if snap is None:
            return cast(ToolResult, problem)
        r = describe_scene(snap.objects, (snap.width, snap.height), snap.faces)
        _, following = self.state.follow_request()
        data = {**r.data, "hands": list(snap.hands), "following": asdict(following) if following else None,
                **self._meta(snap)}
        return ToolResult(ok=r.ok, summary=r.summary, data=data)

    def track(self, label: str) -> ToolResult:
        target = match_label(label, self.labels)
        data: dict[str, Any] = {"label": label, "matched_label": target}
        if target is None:
            return ToolResult(ok=False, summary=f"I can't see a {label}: it isn't something I can recognise.",
                              data={**data, "status": "unknown-label"})
        snap, problem = self._fresh()
        if snap is None:
            return cast(ToolResult, problem)
        objects = TrackFrame(list(snap.objects))
        choice, _ = follower(lambda _frame: objects, FollowState("searching", target))
        state = choice.step(None)  # type: ignore[arg-type]  # TrackFrame's detector ignores the frame
        if state.track_id is None or state.box is None:
            return ToolResult(ok=False, summary=f"I can't see a {label} right now.",
                              data={**data, "status": "not-found", **self._meta(snap)})
        self.state.request_follow(state)
        side, depth = place(state.box, snap.width, snap.height)
        where = "in the centre" if side == "centre" else f"on the {side}"
        return ToolResult(ok=True, summary=f"I'm following the {target} {where}, {depth} (track {state.track_id}).",
                          data={**data, "status": "tracking", "track_id": state.track_id,
                                "box": [round(v, 1) for v in state.box], "position": side, "distance": depth,
                                **self._meta(snap)})


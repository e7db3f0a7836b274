"""``query_map`` backend: keyword rules pick the label and the kind of question; numbers come from the map."""
from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

from tools.base import ToolResult
from tools.slam.map import Landmark, SlamMap

_STOP = {"is", "are", "was", "were", "from", "relative", "to", "me", "us", "now", "located", "right", "the"}
_KINDS: tuple[tuple[str, str], ...] = (  # (kind, pattern) in priority order
    ("last_seen", r"\b(last seen|last saw|see it last|when did you (last )?see|when was)\b"),
    ("travelled", r"\b(travel+ed|moved|walked|gone|come|distance (we|i|you) (have )?(covered|travel+ed))\b"
                  r"|\bhow far (have|did) (we|i|you)\b"),
    ("size", r"\b(how (big|large)|size of|how many (key ?frames|points|landmarks|map points)|key ?frames|map points)\b"),
    ("objects", r"\b(what|which) (objects|things)\b|\bwhat('s| is| have you| did you)? (on|in) the map\b"
                r"|\bwhat have you (seen|mapped)\b"),
    ("where", r"\b(where|how far|distance to|left or right|which (side|direction)|behind|ahead|in front)\b"),
)


def _direction(bearing: float) -> str:
    """Plain words for a bearing in degrees (0 ahead, positive to the right)."""
    side = "right" if bearing > 0 else "left"
    a = abs(bearing)
    if a <= 20:
        return "straight ahead"
    if a <= 70:
        return f"ahead to your {side}"
    if a <= 110:
        return f"to your {side}"
    if a <= 160:
        return f"behind you to the {side}"
    return "behind you"


class SlamMapQuery:
    """Implements :class:`tools.base.MapQuery` over a live :class:`SlamMap` (or none yet).

    ``source`` returns the current map (None before mapping started), so the answer always
    reflects the latest state. Distances are in metres when ``metres_per_unit`` is known.
    """

    def __init__(self, source: Callable[[], SlamMap | None] | SlamMap | None,
                 metres_per_unit: float | None = None) -> None:
        self._source = source if callable(source) else (lambda: source)
        self.scale = metres_per_unit

    # -- helpers ---------------------------------------------------------
    def _dist(self, d: float) -> tuple[float, str, str]:
        if self.scale:
            v = d * self.scale
            return round(v, 2), "m", f"{v:.1f} metres"
        return round(d, 3), "map units", f"{d:.2f} map units"

    @staticmethod
    def _kind(q: str) -> str:
        for kind, pat in _KINDS:
            if re.search(pat, q):
                return kind
        return "summary"

    @staticmethod
    def _label(q: str, labels: list[str]) -> str | None:
        for lab in sorted(labels, key=len, reverse=True):  # "wine glass" before "glass"
            if re.search(rf"\b{re.escape(lab)}(e?s)?\b", q):
                return lab
        return None

    @staticmethod
    def _asked_object(q: str) -> str | None:
        """The noun phrase after the/a/my, for naming an object that is not on the map."""
        m = re.search(r"\b(?:the|a|an|my|your)\s+([a-z][a-z ]{0,40})", q)
        if not m:
            return None
        words = []
        for w in m.group(1).split():
            if w in _STOP:
                break
            words.append(w)
        name = " ".join(words).strip()
        return name if name and name not in ("map",) else None

    # -- the MapQuery protocol ---------------------------------------------
    def answer(self, question: str) -> ToolResult:
        q = " ".join(question.lower().replace("?", " ").split())
        m = self._source()
        if m is None or not m.initialised:
            return ToolResult(ok=False, summary="There is no map yet: switch to mapping mode and move the camera "
                                                "around so I can build one.", data={"map": False})
        with m.lock:
            kind, label = self._kind(q), self._label(q, list(m.landmarks))
            if kind == "where" and label is None and self._asked_object(q) is None:
                kind = "summary"
            return getattr(self, f"_{kind}")(m, q, label)

    def _unknown(self, m: SlamMap, q: str) -> ToolResult:
        name = self._asked_object(q) or "that"
        known = ", ".join(sorted(m.landmarks)) or "nothing labelled yet"
        return ToolResult(ok=False, summary=f"I haven't seen {'a ' + name if name != 'that' else name} on the map. "
                                            f"Objects on the map: {known}.",
                          data={"known": False, "asked": name, "labels": sorted(m.landmarks)})

    def _where(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        if label is None:
            return self._unknown(m, q)
        lm: Landmark = m.landmarks[label]
        T, _ = m.current_pose()
        assert T is not None  # landmarks are anchored on posed frames
        Xc = T[:3, :3] @ lm.position + T[:3, 3]
        bearing = math.degrees(math.atan2(Xc[0], Xc[2]))
        value, unit, text = self._dist(float(np.linalg.norm(Xc)))
        where = _direction(bearing)
        return ToolResult(ok=True, summary=f"The {label} is {where}, about {text} away.",
                          data={"label": label, "direction": where, "bearing_deg": round(bearing, 1),
                                "distance": value, "unit": unit, "position": [round(float(x), 4) for x in lm.position]})

    def _last_seen(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        if label is None:
            return self._unknown(m, q)
        lm = m.landmarks[label]
        _, now = m.current_pose()
        ago = max(0.0, (now or lm.last_seen) - lm.last_seen)
        return ToolResult(ok=True, summary=f"I last saw the {label} {ago:.1f} seconds ago (seen {lm.sightings} "
                                           f"time{'s' if lm.sightings != 1 else ''}).",
                          data={"label": label, "last_seen_s": round(lm.last_seen, 3), "seconds_ago": round(ago, 3),
                                "sightings": lm.sightings})

    def _travelled(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        value, unit, text = self._dist(m.path_length())
        return ToolResult(ok=True, summary=f"We have moved about {text} since mapping started.",
                          data={"distance": value, "unit": unit})

    def _size(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        kf, pts, objs = len(m.keyframes), len(m.points), len(m.landmarks)
        return ToolResult(ok=True, summary=f"The map has {kf} keyframes, {pts} points and {objs} labelled "
                                           f"object{'s' if objs != 1 else ''}.",
                          data={"keyframes": kf, "map_points": pts, "landmarks": objs})

    def _objects(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        labels = sorted(m.landmarks)
        text = ", ".join(labels) if labels else "no labelled objects yet"
        return ToolResult(ok=True, summary=f"On the map: {text}.", data={"labels": labels})

    def _summary(self, m: SlamMap, q: str, label: str | None) -> ToolResult:
        if label is not None:
            return self._where(m, q, label)
        size = self._size(m, q, None)
        objs = self._objects(m, q, None)
        return ToolResult(ok=True, summary=f"{size.summary} {objs.summary}", data={**size.data, **objs.data})

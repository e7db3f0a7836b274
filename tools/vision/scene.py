"""``describe_scene``: a grounded summary of what the detector (and face analyser) found.

Only detected things are named. Positions are coarse and derived from boxes:
left / centre / right from the box centre's thirds of the frame width, and
near / middle / far from the box's height as a share of the frame height and
from how low its bottom edge sits (things standing closer reach lower in the
picture), so a small object at the photographer's feet still counts as near.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from tools.affect.face_attributes import confident, looks_like
from tools.base import ToolResult
from tools.vision.who import who_is_here

NEAR_HEIGHT, FAR_HEIGHT = 0.45, 0.2  # box height / frame height
NEAR_BOTTOM, FAR_BOTTOM = 0.9, 0.6  # box bottom / frame height
_IRREGULAR = {"person": "people", "mouse": "mice", "knife": "knives", "skis": "skis", "sheep": "sheep",
              "scissors": "scissors", "tv": "TVs"}


def plural(label: str, n: int) -> str:
    """'1 cup', '2 cups', '3 people', '2 sports balls'."""
    if n == 1:
        return f"1 {label}"
    head, _, last = label.rpartition(" ")
    word = _IRREGULAR.get(label) or _IRREGULAR.get(last)
    if word is None:
        word = last + ("es" if last.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{n} {(head + ' ' if head and label not in _IRREGULAR else '')}{word}"


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def place(box: Sequence[float], width: int, height: int) -> tuple[str, str]:
    """(left|centre|right, near|middle|far) of a box x1, y1, x2, y2 in a width x height frame."""
    x1, y1, x2, y2 = box
    cx = (x1 + x2) / 2 / max(width, 1)
    side = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    rel_h, bottom = (y2 - y1) / max(height, 1), y2 / max(height, 1)
    if rel_h >= NEAR_HEIGHT or (bottom >= NEAR_BOTTOM and rel_h >= FAR_HEIGHT / 2):
        depth = "near"
    elif rel_h < FAR_HEIGHT and bottom < FAR_BOTTOM:
        depth = "far"
    else:
        depth = "middle"
    return side, depth


def _where(items: list[dict[str, Any]]) -> str:
    """'on the left, near' for one object; '2 on the left, 1 in the centre' for several."""
    sides = Counter(i["position"] for i in items)
    word = lambda s: "in the centre" if s == "centre" else f"on the {s}"  # noqa: E731
    if len(items) == 1:
        return f"{word(items[0]['position'])}, {items[0]['distance']}"
    if len(sides) == 1:
        return f"all {word(next(iter(sides)))}"
    return ", ".join(f"{n} {word(s)}" for s, n in sides.most_common())


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _face_area(box: Sequence[float]) -> float:
    return max(float(box[2]) - float(box[0]), 0.0) * max(float(box[3]) - float(box[1]), 0.0)


def describe_scene(objects: Iterable[Any], frame_size: tuple[int, int],
                   faces: Iterable[dict[str, Any]] | None = None) -> ToolResult:
    """Counts, positions and distances of detected objects (Detection, TrackedObject or dicts).

    ``frame_size`` is (width, height). ``faces`` are optional dicts with ``box`` and
    ``emotion`` from the face analyser; named faces (``user``) put who is here first.
    """
    w, h = frame_size
    items = []
    for o in objects:
        box = [float(v) for v in _get(o, "box")]
        side, depth = place(box, w, h)
        items.append({"label": _get(o, "label"), "score": round(float(_get(o, "score")), 3),
                      "box": [round(v, 1) for v in box], "position": side, "distance": depth})
    items.sort(key=lambda i: -i["score"])
    counts = Counter(i["label"] for i in items)
    face_list = [confident(dict(f)) for f in (faces or [])]  # age/gender only when sure
    parts = [f"{plural(lab, n)} ({_where([i for i in items if i['label'] == lab])})"
             for lab, n in counts.most_common()]
    if parts:
        summary = f"I can see {_join(parts)}."
    else:
        summary = "I don't see any objects I can recognise right now."
    emotions = [f["emotion"] for f in face_list if f.get("emotion")]
    if face_list:
        summary += f" {plural('face', len(face_list)).capitalize()} in view"
        summary += f" ({', '.join(emotions)})." if emotions else "."
        nearest = looks_like(max(face_list, key=lambda f: _face_area(f.get("box") or (0, 0, 0, 0))))
        summary += f" The nearest looks like {nearest}." if nearest else ""
    who, people = who_is_here(face_list)
    if who:
        summary = f"{who} {summary}"
    data = {"counts": dict(counts), "objects": items, "faces": face_list, "people": people,
            "frame": {"width": w, "height": h}}
    return ToolResult(ok=True, summary=summary, data=data)

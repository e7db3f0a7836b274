"""``main.py perceive``: objects, faces and hands on an image or a video clip.

Output per CLI.md: ``{"frames": [{"t", "faces", "hands", "objects": [{label, score,
box, track_id}]}]}``; ``-o`` writes the frame(s) annotated with boxes, labels and
track ids. Unreadable or empty inputs raise a typed one-line error (exit 2).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from agent.common.config import Settings
from agent.session.perception import build_frame_processor
from tools.common.errors import ErrorCode, MMChatError
from tools.vision.images import load_image, read_video
from tools.vision.state import Snapshot
from tools.vision.tracking import TrackedObject

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("perceive", parents=[common], help="objects, faces and hands in an image or video; "
                                                         "emotion, age and gender from face, voice and words")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="a photo (jpg, png, ...)")
    src.add_argument("--video", help="a video file")
    p.add_argument("--audio", default=None, help="a recording of the user's voice (emotion, gender, arousal)")
    p.add_argument("--text", default=None, help="what the user said (emotion of the words)")
    p.add_argument("-o", "--output", default=None, help="write an annotated image/video (.mp4/.avi) here")
    p.add_argument("--every", type=int, default=None, help="run the detector every N frames (default: config)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N video frames")
    p.set_defaults(handler=perceive)


def _bad(message: str, code: ErrorCode = ErrorCode.IMAGE_INVALID) -> MMChatError:
    return MMChatError(message, code)


def _colour(track_id: int) -> tuple[int, int, int]:
    hue = (track_id * 47) % 180
    b, g, r = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def annotate(frame: np.ndarray, objects: Sequence[TrackedObject]) -> np.ndarray:
    """A copy of the frame with boxes, labels, scores and track ids drawn."""
    out = frame.copy()
    for o in objects:
        x1, y1, x2, y2 = (int(round(v)) for v in o.box)
        c = _colour(o.track_id)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
        text = f"{o.label} #{o.track_id} {o.score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(y1, th + 4)
        cv2.rectangle(out, (x1, ty - th - 4), (x1 + tw + 2, ty), c, -1)
        cv2.putText(out, text, (x1 + 1, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


class _VideoOut:
    """Lazily opened annotated-video writer."""

    def __init__(self, path: Path, fps: float) -> None:
        codec = VIDEO_CODECS.get(path.suffix.lower())
        if codec is None:
            raise _bad(f"{path}: video output must end in {', '.join(VIDEO_CODECS)}", ErrorCode.BAD_INPUT)
        self.path, self.fps, self.codec = path, fps, codec
        self.writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*self.codec)  # type: ignore[attr-defined]  # (missing from the stubs)
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise _bad(f"{self.path}: cannot write video", ErrorCode.BAD_INPUT)
        self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise _bad(f"{name} must be at least 1, got {value}", ErrorCode.BAD_INPUT)


def perceive(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if not (args.image or args.video or args.audio or args.text is not None):
        raise _bad("give at least one of --image, --video, --audio, --text", ErrorCode.BAD_INPUT)
    audio = _load_audio(args.audio) if args.audio else None  # bad audio fails before any model loads
    payload = perceive_frames(args, settings) if args.image or args.video else {"frames": []}
    if audio is not None or args.text is not None:
        from tools.affect.service import Affect

        affect = Affect.shared(settings.affect, settings.identity.min_speech_s)
        frames = payload["frames"] if args.image or args.video else None
        payload.update(affect.perceive(frames, audio, args.text))
    elif payload["frames"]:
        from tools.affect.service import Affect

        payload.update(Affect.shared(settings.affect).perceive(payload["frames"]))
    return payload


def _load_audio(path: str) -> np.ndarray:
    from agent.common.audio_io import load_audio

    return load_audio(path)


def perceive_frames(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    _positive(args.every, "--every")
    _positive(args.max_frames, "--max-frames")
    out_path = Path(args.output) if args.output else None
    if args.image:
        fps, frames = 0.0, iter([(0.0, load_image(args.image))])
        if out_path and not cv2.haveImageWriter(str(out_path)):
            raise _bad(f"{out_path}: unsupported image output type", ErrorCode.BAD_INPUT)
    else:
        fps, frames = read_video(args.video, args.max_frames)
    cfg = settings.detector
    if args.every:
        cfg = cfg.model_copy(update={"detect_every": args.every})
        settings = settings.model_copy(update={"detector": cfg})
    processor = build_frame_processor(settings, video=bool(args.video))
    video_out = _VideoOut(out_path, fps) if out_path and args.video else None
    results: list[dict[str, Any]] = []
    last: tuple[np.ndarray, Snapshot] | None = None
    t0 = time.perf_counter()
    try:
        for t, frame in frames:
            snap = processor.process(frame, t=t, live=bool(args.video))  # face boxes x1 y1 x2 y2
            results.append(snap.frame_json(t))
            last = (frame, snap)
            if video_out:
                video_out.write(annotate(frame, snap.objects))
    finally:
        if video_out:
            video_out.close()
    elapsed = time.perf_counter() - t0
    if out_path and args.image and last is not None:
        cv2.imwrite(str(out_path), annotate(last[0], last[1].objects))
    payload: dict[str, Any] = {"frames": results}
    if last is not None:
        payload["summary"] = last[1].summary()
    per_frame = 1000 * elapsed / max(len(results), 1)
    payload["timings"] = {"total_s": round(elapsed, 3), "ms_per_frame": round(per_frame, 1),
                          "detect_every": cfg.detect_every}
    if out_path:
        payload["output"] = str(out_path)
    return payload

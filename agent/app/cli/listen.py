"""Listening commands: wake-word detection over a recording."""
from __future__ import annotations

import argparse
import time
from typing import Any

from agent.common.audio_io import load_audio
from agent.common.config import Settings, WakeSettings
from tools.common.errors import MMChatError
from tools.common.pcm import SAMPLE_RATE


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("wake", parents=[common], help="wake-word detection over a recording")
    p.add_argument("audio")
    p.add_argument("--threshold", type=float, default=None, help="override wake.threshold")
    p.set_defaults(handler=wake)


def wake(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.listen.wakeword import WakeWordDetector

    cfg = settings.wake
    if args.threshold is not None:
        if not 0.0 < args.threshold < 1.0:
            raise MMChatError(f"--threshold must be between 0 and 1, got {args.threshold}")
        cfg = WakeSettings(**{**cfg.model_dump(), "threshold": args.threshold})
    audio = load_audio(args.audio)
    detector = WakeWordDetector(cfg)
    t0 = time.perf_counter()
    detections = detector.detect(audio)
    return {"detections": detections, "model": cfg.model, "threshold": cfg.threshold,
            "duration_s": round(len(audio) / SAMPLE_RATE, 3), "timings": {"wake_s": round(time.perf_counter() - t0, 4)}}

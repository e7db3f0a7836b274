"""Hands-free session command: ``run --audio AUDIO [--video VIDEO]``."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.common.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="a whole hands-free session over recordings")
    p.add_argument("--audio", required=True, help="the microphone recording")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--video", default=None, help="camera recording, in sync with the audio (face check, liveness)")
    g.add_argument("--face", default=None, help="a still photo as the face in view (no liveness: see "
                                                "session.face.allow_still)")
    g.add_argument("--camera", default=None, help="a live camera for the gate and the camera stage: device index, "
                                                  "stream URL, or a video file played as a camera (implies --realtime)")
    p.add_argument("--realtime", action="store_true", help="pace the recording like a live microphone")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.app.demo import format_event
    from agent.common.audio_io import load_audio
    from agent.common.config import new_run_dir as run_dir
    from agent.identity.gate import make_face_feed
    from agent.session.runner import SessionRunner, build_parts

    audio = load_audio(args.audio)  # typed errors for a bad file or face feed before any model loads
    feed = make_face_feed(settings, args.video, args.face, camera=args.camera)
    # loads every model now (turn latencies are not load times); closes the feed if that fails
    parts = build_parts(settings, audio=audio, realtime=args.realtime, feed=feed)
    out = run_dir(settings)
    emit = None if args.json else (lambda e: print(format_event(e), file=sys.stderr, flush=True))
    events = SessionRunner(settings, parts, out, emit=emit).run()
    return {"events": events, "run_dir": str(out)}

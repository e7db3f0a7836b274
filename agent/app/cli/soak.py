"""``soak``: the session over looped recordings for N minutes (agent/evals/soak.py)."""
from __future__ import annotations

import argparse
from typing import Any

from agent.common.config import Settings
from tools.common.errors import MMChatError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("soak", parents=[common], help="long session over looped audio: RSS, threads, turns answered")
    p.add_argument("--minutes", type=float, default=2.0, help="stream minutes (default 2)")
    p.add_argument("--camera", action="store_true", help="also run the camera stage on the looped Hamilton clip "
                                                         "(FPS and dropped frames in the report)")
    p.set_defaults(handler=soak)


def soak(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals.soak import soak as run

    if not 0 < args.minutes <= 24 * 60:
        raise MMChatError(f"--minutes must be in (0, 1440], not {args.minutes:g}")
    return run(settings, args.minutes, camera=args.camera)

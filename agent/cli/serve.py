"""``serve``: the HTTP API and browser page (agent/server.py)."""
from __future__ import annotations

import argparse

from agent.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="HTTP API + browser UI")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(handler=serve)


def serve(args: argparse.Namespace, settings: Settings) -> None:
    from agent.identity.face_sync import sync_configured
    from agent.server import serve as run

    sync_configured(settings)  # session.faces_dir, before the first request reads the profiles
    print(f"MMChat: http://{args.host}:{args.port}/ (Ctrl+C stops)", flush=True)
    run(settings, args.host, args.port)

"""``serve``: the HTTP API and browser page (agent/app/server.py)."""
from __future__ import annotations

import argparse

from agent.common.config import Settings
from tools.common.errors import MMChatError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="HTTP API + browser UI")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--wait", type=float, default=None, metavar="S",
                   help="seconds a request waits for the models before 503 (default: serve.lock_wait_s)")
    p.set_defaults(handler=serve)


def serve(args: argparse.Namespace, settings: Settings) -> None:
    from agent.app.server import serve as run
    from agent.identity.face_sync import sync_configured

    sync_configured(settings)  # session.face.sync_dir, before the first request reads the profiles
    if args.wait is not None:
        if args.wait <= 0:
            raise MMChatError(f"--wait must be positive, not {args.wait:g}")
        settings = settings.model_copy(update={"serve": settings.serve.model_copy(update={"lock_wait_s": args.wait})})
    if args.host in ("127.0.0.1", "localhost", "::1"):
        print(f"MMChat: binding {args.host}:{args.port} (this machine only); open http://{args.host}:{args.port}/ "
              f"(live session: /live; Ctrl+C stops)", flush=True)
        return run(settings, args.host, args.port)
    from agent.app.secure import local_names, new_token, tls_files

    tls, token = tls_files(settings.cache_dir / "tls"), new_token()
    names = [n for n in local_names() if n not in ("localhost", "127.0.0.1", "::1")]
    print(f"MMChat: binding {args.host}:{args.port} (the network, TLS with a self-signed certificate: "
          f"{tls[0]}); pairing token {token}", flush=True)
    for name in names[:4]:
        print(f"  open https://{name}:{args.port}/live?token={token}  (accept the certificate warning once)",
              flush=True)
    run(settings, args.host, args.port, token=token, tls=tls)

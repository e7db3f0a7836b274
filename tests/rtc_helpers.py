"""Helpers for the live-session tests: the server in a thread, the enrolled ``lin`` profile, scripts."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from tests.fakes import free_port


class ThreadServer:
    """``create_app`` served by uvicorn on 127.0.0.1 in a thread (``with`` stops it)."""

    def __init__(self, app: Any, port: int | None = None, **ssl: Any) -> None:
        self.app, self.port = app, port or free_port()
        scheme = "https" if ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **ssl))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        t_end = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > t_end or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def lin_settings(settings: Any, folder: Path) -> Any:
    """``settings`` with profiles in ``folder`` holding ``lin`` (agent.evals.rtc_probe.enroll_lin)."""
    from agent.evals.rtc_probe import enroll_lin

    s = settings.model_copy(update={"paths": settings.paths.model_copy(update={"profiles": str(folder)})})
    enroll_lin(s)
    return s

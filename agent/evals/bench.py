"""``main.py bench``: every benchmark group, one JSON entry per figure.

A group is a function ``(settings, repeat) -> {figure_name: figure(...)}`` listed
in GROUPS as "module:function"; groups load lazily so one failing group is
reported in ``errors`` and the others still run.
"""
from __future__ import annotations

import importlib
import logging

from agent.common.config import Settings

log = logging.getLogger(__name__)

GROUPS: dict[str, str] = {
    "session": "agent.evals.bench_session:bench_session",
    "speech": "agent.evals.bench_speech:bench_speech",
    "echo": "agent.evals.bench_echo:bench_echo",
    "objects": "agent.evals.bench_vision_objects:bench_objects",
    "vision_face": "agent.evals.bench_vision_face:bench_face_hands",
    "faces_id": "agent.evals.bench_faces_id:bench_faces_id",
    "slam": "agent.evals.bench_slam:bench_slam",
    "affect": "agent.evals.bench_affect:bench_affect",
    "server_load": "agent.evals.server_load:bench_server_load",
    "compression": "agent.evals.compression:bench_compression",
    "rtc": "agent.evals.bench_rtc:bench_rtc",
}


def run_benchmarks(settings: Settings, repeat: int = 3, only: list[str] | None = None) -> dict:
    out: dict = {}
    errors: dict[str, str] = {}
    for name, target in GROUPS.items():
        if only and name not in only:
            continue
        mod, fn = target.split(":")
        log.info("bench: %s", name)
        try:
            out.update(getattr(importlib.import_module(mod), fn)(settings, repeat))
        except Exception as e:  # report, keep going
            errors[name] = f"{type(e).__name__}: {e}"
    if errors:
        out["errors"] = errors
    return out

"""``main.py bench``: latency figures as JSON (median, p90, n, unit)."""
from __future__ import annotations

import argparse
from typing import Any

from agent.common.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="latency and throughput benchmarks")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--only", nargs="*", default=None, help="benchmark groups to run (default: all)")
    p.set_defaults(handler=bench)


def bench(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals.bench import run_benchmarks

    return run_benchmarks(settings, repeat=max(1, args.repeat), only=args.only)

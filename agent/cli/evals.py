"""Evaluation commands."""
from __future__ import annotations

import argparse
from typing import Any

from agent.config import Settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ev = sub.add_parser("eval", help="accuracy evaluations")
    evsub = ev.add_subparsers(dest="what", metavar="WHAT", parser_class=type(ev))
    evsub.required = True
    p = evsub.add_parser("tools", parents=[common], help="tool-routing accuracy of the controller")
    p.add_argument("--cases", default=None, help="JSONL cases (default: the project's own set)")
    p.set_defaults(handler=eval_tools)
    p = evsub.add_parser("gestures", parents=[common], help="static-gesture classifier accuracy on landmark rows")
    p.add_argument("--csv", required=True, help="rows: label (0 Open, 1 Close, 2 Pointer, 3 OK), 21 x,y pairs")
    p.set_defaults(handler=eval_gestures)


def eval_tools(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.assistant import Assistant
    from agent.evals.tool_routing import DEFAULT_CASES, evaluate, load_cases

    cases = load_cases(args.cases or DEFAULT_CASES)
    return evaluate(Assistant(settings).controller, cases)


def eval_gestures(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from tools.vision import gestures as g

    x, y = g.load_csv(args.csv, 2 * g.N_LANDMARKS)
    return g.evaluate(g.load_model(g.STATIC_MODEL), x, y)

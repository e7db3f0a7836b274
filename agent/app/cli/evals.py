"""Evaluation commands."""
from __future__ import annotations

import argparse
from typing import Any

from agent.common.config import Settings


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
    p = evsub.add_parser("emotion", parents=[common], help="emotion accuracy on labelled photos or sentences")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="DIR/<label>/*.jpg (labels: neutral, happy, sad, angry, surprise(d), fear, ...)")
    src.add_argument("--text", help='JSONL lines {"text": ..., "emotion": [acceptable labels]}')
    p.set_defaults(handler=eval_emotion)
    p = evsub.add_parser("gender", parents=[common], help="gender accuracy from voices or face photos")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", help="CSV with file (relative to the CSV) and gender (female/male) columns")
    src.add_argument("--images", help="DIR/female/*.jpg and DIR/male/*.jpg")
    p.set_defaults(handler=eval_gender)
    p = evsub.add_parser("age", parents=[common], help="age error of the face estimate (within 5 and 10 years)")
    p.add_argument("--images", required=True, help="CSV with file (relative to the CSV) and age columns")
    p.set_defaults(handler=eval_age)


def eval_tools(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals.tool_routing import DEFAULT_CASES, evaluate, load_cases
    from agent.session.assistant import Assistant

    cases = load_cases(args.cases or DEFAULT_CASES)
    return evaluate(Assistant(settings).controller, cases)


def eval_gestures(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from tools.vision import gestures as g

    x, y = g.load_csv(args.csv, 2 * g.N_LANDMARKS)
    return g.evaluate(g.load_model(g.STATIC_MODEL), x, y)


def eval_emotion(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals import affect_runs

    return affect_runs.emotion_images(settings, args.images) if args.images else \
        affect_runs.emotion_text(settings, args.text)


def eval_gender(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals import affect_runs

    return affect_runs.gender_audio(settings, args.audio) if args.audio else \
        affect_runs.gender_images(settings, args.images)


def eval_age(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.evals.affect_runs import age_images

    return age_images(settings, args.images)

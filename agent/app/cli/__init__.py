"""Command-line entry: one subcommand module per area, contract in ../shared/CLI.md.

Every command takes ``--config`` and ``--json``; with ``--json`` exactly one JSON
object goes to stdout and logs go to stderr. User mistakes exit 2 with a single
line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Any, Callable, NoReturn

from agent.common.config import Settings, load_settings
from tools.common.errors import MMChatError

Handler = Callable[[argparse.Namespace, Settings], "dict[str, Any] | None"]

# Modules that contribute subcommands; each has ``register(sub, common)``.
COMMAND_MODULES = ("agent.app.cli.speech", "agent.app.cli.evals", "agent.app.cli.bench", "agent.app.cli.listen", "agent.app.cli.vision", "agent.app.cli.identity", "agent.app.cli.session", "agent.app.cli.mapping",
                   "agent.app.cli.serve", "agent.app.cli.soak")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _common(suppress: bool = False) -> argparse.ArgumentParser:
    """Options every command takes. Subcommands get them with SUPPRESS defaults, so
    ``mmchat --json ask ...`` and ``mmchat ask ... --json`` both work (a subcommand
    default would otherwise overwrite what was given before it)."""
    p = argparse.ArgumentParser(add_help=False)
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--config", **({"default": "config.yaml"} | keep), help="settings file (default: config.yaml)")
    p.add_argument("--profile", choices=("small", "balanced", "accurate"), **({"default": None} | keep),
                   help="model variants for this run (overrides config.yaml's profile; its explicit model keys still win)")
    p.add_argument("--json", action="store_true", **keep, help="print one JSON object on stdout")
    p.add_argument("-v", "--verbose", action="store_true", **keep, help="debug logs on stderr")
    return p


def build_parser() -> argparse.ArgumentParser:
    import importlib

    common = _common(suppress=True)
    parser = _Parser(prog="mmchat", parents=[_common()],
                     description="MMChat: a local, offline, hands-free multimodal voice assistant.")
    parser.add_argument("--live", action="store_true", help="use microphone and camera if present")
    parser.set_defaults(handler=None)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*langchain-community.*")


def emit(payload: dict[str, Any] | None, as_json: bool) -> None:
    """Print the command's result: JSON object or a readable summary."""
    if payload is None:
        return
    if as_json:
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    for k, v in payload.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        print(f"{k}: {v}")


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("agent").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        settings = load_settings(args.config, profile=args.profile)
        handler: Handler = args.handler or _default_handler()
        emit(handler(args, settings), args.json)
        return 0
    except MMChatError as e:
        print(f"mmchat: error [{e.code.value}]: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _default_handler() -> Handler:
    from agent.app.cli.speech import demo

    return demo

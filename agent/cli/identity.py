"""Identity commands: enroll, profiles list/remove, verify."""
from __future__ import annotations

import argparse
from typing import Any

from agent.config import Settings
from agent.identity.profiles import ProfileStore


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("enroll", parents=[common], help="create or update a profile from voice and face samples")
    p.add_argument("name")
    p.add_argument("--voice", nargs="+", default=[], metavar="WAV", help="speech recordings of the user")
    p.add_argument("--face", nargs="+", default=[], metavar="IMG", help="photos showing only the user")
    p.set_defaults(handler=enroll)

    p = sub.add_parser("profiles", parents=[common], help="list or remove profiles")
    ps = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=sub._parser_class)
    ps.add_parser("list", parents=[common], help="enrolled users").set_defaults(handler=profiles_list)
    r = ps.add_parser("remove", parents=[common], help="delete a profile")
    r.add_argument("name")
    r.set_defaults(handler=profiles_remove)

    p = sub.add_parser("verify", parents=[common], help="identity check against all profiles")
    p.add_argument("--voice", metavar="WAV", help="speech recording to check")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--face", metavar="IMG", help="photo showing exactly one face")
    g.add_argument("--video", metavar="VIDEO", help="face check and liveness over a clip")
    p.add_argument("--start", type=float, default=None, help="video window start, s (default: config)")
    p.add_argument("--window", type=float, default=None, help="video window length, s (default: config)")
    p.set_defaults(handler=verify)


def _checker(settings: Settings):  # noqa: ANN202
    from agent.identity.verify import IdentityChecker

    return IdentityChecker(settings)


def _store(settings: Settings) -> ProfileStore:
    return ProfileStore(settings.path(settings.paths.profiles))


def enroll(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return _checker(settings).enroll(args.name, args.voice, args.face).as_json()


def profiles_list(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {"users": _store(settings).names()}


def profiles_remove(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    store = _store(settings)
    store.remove(args.name)
    return {"users": store.names(), "removed": args.name}


def verify(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return _checker(settings).verify(voice=args.voice, face=args.face, video=args.video,
                                     start_s=args.start, window_s=args.window).as_json()

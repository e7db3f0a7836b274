"""Identity commands: enroll, profiles list/remove/sync, verify."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from agent.common.config import Settings
from agent.common.models import PIPER_VOICES
from agent.identity.preferences import REPLY_EXTRA, Preferences, check_voice
from agent.identity.profiles import ProfileStore
from tools.common.errors import MMChatError

if TYPE_CHECKING:
    from agent.identity.verify import IdentityChecker


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("enroll", parents=[common], help="create or update a profile from voice and face samples")
    p.add_argument("name")
    p.add_argument("--voice", nargs="+", default=[], metavar="WAV", help="speech recordings of the user")
    p.add_argument("--face", nargs="+", default=[], metavar="IMG", help="photos showing only the user")
    p.add_argument("--address-as", metavar="TEXT", help="what the assistant calls the user (default: NAME)")
    p.add_argument("--reply-length", choices=list(REPLY_EXTRA), help="answer length (default: short)")
    p.add_argument("--tts-voice", metavar="VOICE", help=f"Piper voice for this user's replies "
                   f"(known: {', '.join(sorted(PIPER_VOICES))})")
    p.add_argument("--passphrase", metavar="TEXT", help="spoken passphrase for unlocking (needs --voice takes; "
                   "stored only as salted per-word hashes)")
    p.set_defaults(handler=enroll)

    p = sub.add_parser("profiles", parents=[common], help="list or remove profiles")
    ps = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=sub._parser_class)
    ps.add_parser("list", parents=[common], help="enrolled users").set_defaults(handler=profiles_list)
    r = ps.add_parser("remove", parents=[common], help="delete a profile")
    r.add_argument("name")
    r.set_defaults(handler=profiles_remove)
    y = ps.add_parser("sync", parents=[common], help="enrol faces from DIR/<name>/*.jpg|png; retrain only on change")
    y.add_argument("dir", metavar="DIR", help="one folder per person, named like the profile")
    y.set_defaults(handler=profiles_sync)

    p = sub.add_parser("verify", parents=[common], help="identity check against all profiles")
    p.add_argument("--voice", metavar="WAV", help="speech recording to check")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--face", metavar="IMG", help="photo showing exactly one face")
    g.add_argument("--video", metavar="VIDEO", help="face check and liveness over a clip")
    p.add_argument("--start", type=float, default=None, help="video window start, s (default: config)")
    p.add_argument("--window", type=float, default=None, help="video window length, s (default: config)")
    p.add_argument("--expect-phrase", metavar="TEXT", help="the words --voice must say (ASR, "
                   "identity.phrase_tolerance); without it, the closest user's passphrase if they have one")
    p.set_defaults(handler=verify)


def _checker(settings: Settings) -> IdentityChecker:
    from agent.identity.verify import IdentityChecker

    return IdentityChecker(settings)


def _store(settings: Settings) -> ProfileStore:
    return ProfileStore(settings.path(settings.paths.profiles))


def _prefs(args: argparse.Namespace) -> dict[str, Any]:
    """The preferences given on the command line (validated before any model loads)."""
    prefs: dict[str, Any] = {}
    if args.address_as is not None:
        prefs["address_as"] = " ".join(args.address_as.split()) or args.name
    if args.reply_length is not None:
        prefs["reply_length"] = args.reply_length
    if args.tts_voice is not None:
        prefs["voice"] = check_voice(args.tts_voice)
    return prefs


def enroll(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    prefs = _prefs(args)
    return _checker(settings).enroll(args.name, args.voice, args.face, prefs, args.passphrase).as_json()


def profiles_list(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    store = _store(settings)
    names = store.names()
    return {"users": names, "preferences": {n: Preferences.of(n, store.load(n).prefs).as_dict() for n in names}}


def profiles_remove(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.identity.face_sync import FaceSync

    store = _store(settings)
    store.remove(args.name)
    FaceSync.from_settings(settings).forget(args.name)  # their classifier data and sync records too
    return {"users": store.names(), "removed": args.name}


def profiles_sync(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.identity.face_sync import FaceSync

    return FaceSync.from_settings(settings).sync(args.dir).as_json()


def verify(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if args.expect_phrase is not None and args.voice is None:
        raise MMChatError("--expect-phrase needs --voice")
    checker = _checker(settings)
    d = checker.verify(voice=args.voice, face=args.face, video=args.video, start_s=args.start, window_s=args.window)
    if args.voice is None:
        return d.as_json()
    from agent.identity.audio_key import verify_phrase

    return verify_phrase(settings, checker, d, args.voice, args.expect_phrase)

"""Speech and text turn commands: ask, transcribe, say, turn, and the demo."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.common.config import Settings, new_run_dir
from agent.session.mapping import MapHook
from agent.session.perception import PerceptionHook, turn_emotion
from tools import ToolContext

if TYPE_CHECKING:
    from agent.session.assistant import Assistant


def add_camera_arguments(p: argparse.ArgumentParser) -> None:
    """``--image IMG`` / ``--video VIDEO``: what the camera sees during the turn."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", default=None, help="a photo the camera sees during the turn")
    src.add_argument("--video", default=None, help="a video the camera sees (played in a loop) during the turn")


def add_map_arguments(p: argparse.ArgumentParser) -> None:
    """``--map-frames DIR`` / ``--map-video VIDEO`` and ``--intrinsics K.yaml``."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--map-frames", default=None, help="an image folder to map before the turn")
    src.add_argument("--map-video", default=None, help="a video to map before the turn")
    p.add_argument("--intrinsics", default=None, help="K.yaml (fx, fy, cx, cy [width, height]) for the map input")


def _assistant(settings: Settings, ctx: ToolContext | None = None) -> "Assistant":
    """Models load (and their libraries import) only when a command needs them."""
    from agent.session.assistant import Assistant

    return Assistant(settings, tool_context=ctx)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common], help="one text turn through the controller")
    p.add_argument("text")
    p.add_argument("--emotion", default=None, help="user emotion (default: from perception, else neutral)")
    p.add_argument("--unlocked", action="store_true", help="bypass the session gate")
    p.add_argument("-o", "--output", default=None, help="also speak the reply into this WAV")
    p.add_argument("--server", default=None, metavar="URL",
                   help="ask a running `main.py serve` (models already warm) instead of loading them here")
    add_camera_arguments(p)
    add_map_arguments(p)
    p.set_defaults(handler=ask)

    p = sub.add_parser("transcribe", parents=[common], help="speech to text")
    p.add_argument("audio")
    p.set_defaults(handler=transcribe)

    p = sub.add_parser("say", parents=[common], help="text to speech")
    p.add_argument("text")
    p.add_argument("-o", "--output", required=True, help="output WAV path")
    p.set_defaults(handler=say)

    p = sub.add_parser("turn", parents=[common], help="one spoken turn: ASR -> controller -> TTS")
    p.add_argument("--audio", required=True)
    p.add_argument("-o", "--output", default=None, help="reply WAV (default: runs/<time>/reply.wav)")
    p.add_argument("--emotion", default=None, help="user emotion (default: from perception, else neutral)")
    add_camera_arguments(p)
    add_map_arguments(p)
    p.set_defaults(handler=turn)


def ask(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if args.server:
        return _ask_server(args.server, args.text, args.emotion)
    ctx = ToolContext()
    camera = PerceptionHook(settings, ctx, args.image, args.video)  # checks the inputs now
    mapper = MapHook(settings, ctx, args.map_frames, args.map_video, args.intrinsics)
    assistant = _assistant(settings, ctx)
    _ = assistant.controller  # LLM loads before the camera stage runs
    sink = None
    if args.output:
        from agent.speak.speech_out import BufferSink

        _, sink = assistant.tts, BufferSink()
    with camera as seen, mapper:
        reply = assistant.answer(args.text, turn_emotion(args.emotion, seen, args.text, assistant.tool_context), sink)
    assert reply.result is not None
    out: dict[str, Any] = {**reply.result.as_json(), **mapper.report()}
    if sink is not None:
        out["reply_audio"] = str(sink.save(args.output))
        if reply.first_audio_s is not None:
            out["timings"]["tts_first_audio_s"] = round(reply.first_audio_s, 4)
    return out


def _ask_server(url: str, text: str, emotion: str | None) -> dict[str, Any]:
    """One text turn on a running server: the same JSON, without loading a model in this process."""
    import json
    import urllib.error
    import urllib.request

    from tools.common.errors import BackendUnavailableError, MMChatError

    body = json.dumps({"text": text, "emotion": emotion}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/api/ask", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        raise MMChatError(f"server refused the question ({e.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise BackendUnavailableError(f"no MMChat server at {url} ({e}); start one with: main.py serve") from None


def transcribe(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    text, meta = _assistant(settings).transcribe(args.audio)
    return {"text": text, **meta}


def say(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.speak.speech_out import BufferSink

    sink = BufferSink()
    t0 = time.perf_counter()
    first = _assistant(settings).speak(args.text, sink)
    path = sink.save(args.output)
    return {"path": str(path), "duration_s": round(len(sink.audio) / sink.sample_rate, 3),
            "timings": {"tts_first_audio_s": round(first, 4), "tts_s": round(time.perf_counter() - t0, 4)}}


def turn(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from agent.common.audio_io import load_audio

    audio = load_audio(args.audio)
    ctx = ToolContext()
    camera = PerceptionHook(settings, ctx, args.image, args.video)  # checks the inputs now
    mapper = MapHook(settings, ctx, args.map_frames, args.map_video, args.intrinsics)
    assistant = _assistant(settings, ctx)
    _ = assistant.asr, assistant.tts, assistant.controller  # load models before the clock starts
    from agent.speak.speech_out import BufferSink

    sink = BufferSink()
    with camera as seen, mapper:
        transcript, result, _ = assistant.spoken_turn(audio, sink, emotion=turn_emotion(args.emotion, seen))
    out = Path(args.output) if args.output else new_run_dir(settings) / "reply.wav"
    sink.save(out)
    return {"transcript": transcript, **result.as_json(), "reply_audio": str(out), **mapper.report()}


def demo(args: argparse.Namespace, settings: Settings) -> None:
    """The main job: a hands-free session over the bundled demo recording (or live devices)."""
    from agent.app.demo import run_demo

    run_demo(settings, live=getattr(args, "live", False))

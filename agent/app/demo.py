"""The main job: a hands-free session over a conversation composed at run time from real material.

The script: a Piper "hey jarvis", the enrolled demo user (spk1 of the shared test
recordings) asking with a held-out sentence, then -- once the assistant has
finished talking -- a Piper question that makes the controller switch to privacy
mode (which locks), then an impostor (spk2) who wakes it and is refused. The face
of the demo user is Obama (enrolled from faces/enroll/obama); the probe is the
configured ``session.face.fallback`` photo, or --video. A still photo cannot show
liveness, so the demo turns ``session.face.allow_still`` on and says so.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings, replaced
from agent.common.saving import StorageError, write_whole
from agent.session.scripted import ScriptedSource, Wait, ensure_demo_profile, silence, synth
from tools.common.errors import ErrorCode, MMChatError
from tools.common.pcm import level

WAKE_TEXT = "Hey Jarvis."
TOOL_QUESTION = "What mode are you in? Switch to privacy mode."


def demo_script(tts: Any, speech_dir: Path) -> list[np.ndarray | Wait]:
    wake = synth(tts, WAKE_TEXT)
    user = level(load_audio(speech_dir / "spk1_snt4.wav"))
    impostor = level(load_audio(speech_dir / "spk2_snt2.wav"))
    return [silence(1.0), wake, silence(0.8), user, Wait(1.0), synth(tts, TOOL_QUESTION), Wait(3.0),
            wake, silence(0.8), impostor, Wait(1.0)]


def format_event(e: dict[str, Any]) -> str:
    rest = {k: v for k, v in e.items() if k not in ("t", "type")}
    if e["type"] == "stats":
        lines = [f"{e['t']:7.2f}s  stats  stream {e['stream_s']} s, wall {e['wall_s']} s"]
        lines += [f"           {k:<15} median {v['median_ms']:8.1f} ms  p90 {v['p90_ms']:8.1f} ms  n={v['n']}"
                  for k, v in e["stages"].items()]
        return "\n".join(lines)
    return f"{e['t']:7.2f}s  {e['type']:<10} {json.dumps(rest, ensure_ascii=False)}"


def run_demo(settings: Settings, live: bool = False, video: str | None = None) -> list[dict[str, Any]]:
    """Compose the conversation, run the session with the real models, print the run log."""
    from agent.common.config import new_run_dir as run_dir
    from agent.session.assistant import Assistant
    from agent.session.runner import SessionRunner, build_parts

    if live:  # devices first: a missing microphone or camera fails before any model loads
        from agent.identity.gate import make_face_feed
        from agent.listen.sources import default_input_device
        from agent.session.runner import close_feed

        default_input_device()
        close_feed(make_face_feed(settings, video, live=True))  # opened again once the models are loaded
    run = run_dir(settings)
    print(f"MMChat demo: hands-free session; reply audio in {run}")
    if live:
        print("live mode: microphone, camera and loudspeaker (Ctrl+C ends the session)")
    settings = ensure_demo_profile(settings, run)
    if not live and video is None and not settings.session.face.allow_still:
        settings = replaced(settings, "session.face", allow_still=True)
        print("note: the demo's face probe is a still photo, which cannot show liveness; "
              "session.face.allow_still is switched on for this demo only")
    t0 = time.perf_counter()
    assistant = Assistant(settings)
    loaded = assistant.preload()  # ASR, TTS and the LLM load in parallel while the stages are built
    audio = None
    if not live:
        speech_dir = settings.testdata_dir / "speech"
        if not speech_dir.is_dir():
            raise MMChatError(f"demo recordings not found in {speech_dir}", ErrorCode.AUDIO_MISSING)
        audio = ScriptedSource(demo_script(assistant.tts, speech_dir), settings.vad.frame_ms,
                               settle_s=settings.vad.end_silence_ms / 1000 + 0.9)
    parts = build_parts(settings, audio=audio, video=video, live=live, assistant=assistant)
    loaded()
    print(f"models loaded in {time.perf_counter() - t0:.1f} s; face source: {type(parts.gate.feed).__name__}")
    print(f"script: '{WAKE_TEXT}' (Piper) + spk1_snt4 (enrolled user) | '{TOOL_QUESTION}' (Piper) | "
          f"'{WAKE_TEXT}' + spk2_snt2 (impostor)" if not live else "say 'hey jarvis' ...")
    runner = SessionRunner(settings, parts, run, emit=lambda e: print(format_event(e), flush=True))
    events = runner.run()
    try:
        saved = write_whole(run / "events.json", json.dumps({"events": events}, ensure_ascii=False, indent=1).encode())
        print(f"events written to {saved}")
    except StorageError as e:  # the events were printed above; the run folder is full
        print(f"{e.code.value}: {e}", file=sys.stderr)
    return events

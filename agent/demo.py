"""The main job: a hands-free session over a conversation composed at run time from real material.

The script: a Piper "hey jarvis", the enrolled demo user (spk1 of the shared test
recordings) asking with a held-out sentence, then -- once the assistant has
finished talking -- a Piper question that makes the controller switch to privacy
mode (which locks), then an impostor (spk2) who wakes it and is refused. The face
of the demo user is Obama (enrolled from faces/enroll/obama); the probe is the
configured ``session.face_fallback`` photo, or --video. A still photo cannot show
liveness, so the demo turns ``session.allow_still_face`` on and says so.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from agent.audio.sources import frames_of, paced
from agent.audio.wake_eval import level, trim
from agent.audio_io import SAMPLE_RATE, load_audio, resample
from agent.config import Settings
from agent.errors import ErrorCode, MMChatError

DEMO_USER = "demo"
WAKE_TEXT = "Hey Jarvis."
TOOL_QUESTION = "What mode are you in? Switch to privacy mode."


class Wait:
    """Script step: the user waits until the assistant is quiet, then ``after_s`` of silence."""

    def __init__(self, after_s: float = 1.0) -> None:
        self.after_s = after_s


class ScriptedSource:
    """A conversation as an AudioSource: audio parts, and Wait steps that listen for the assistant."""

    def __init__(self, parts: list[np.ndarray | Wait | Callable[[], np.ndarray]], frame_ms: int = 30,
                 sample_rate: int = SAMPLE_RATE, settle_s: float = 1.5, realtime: bool = False) -> None:
        """``realtime``: frames come at their wall-clock pace, like a microphone (else as fast as read)."""
        self.parts, self.sample_rate, self.settle_s = parts, sample_rate, settle_s  # settle: VAD end + queues
        self.realtime = realtime
        self.frame_samples = sample_rate * frame_ms // 1000
        self.quiet = lambda: True

    def attach(self, runner: Any) -> None:
        """Called by SessionRunner: the assistant is quiet when no job runs and nothing plays."""
        self.quiet = lambda: not runner.busy and not runner.playback.ahead()

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._frames()
        return paced(frames, self.frame_samples / self.sample_rate) if self.realtime else frames

    def _frames(self) -> Iterator[np.ndarray]:
        silence = np.zeros(self.frame_samples, np.int16)
        for part in self.parts:
            if isinstance(part, Wait):
                for _ in range(int(self.settle_s * self.sample_rate) // self.frame_samples):
                    yield silence  # give the last utterance time to end before asking
                while not self.quiet():
                    yield silence
                part = np.zeros(int(part.after_s * self.sample_rate), np.float32)
            elif callable(part):  # audio made when it is reached (e.g. an answer to what was just said)
                part = part()
            yield from frames_of(part, self.frame_samples)


def synth(tts: Any, text: str) -> np.ndarray:
    """Piper speech at 16 kHz, trimmed and at a normal speaking level."""
    audio = np.concatenate(list(tts.synthesize(text)))
    return level(trim(resample(audio, tts.sample_rate)))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def demo_script(tts: Any, speech_dir: Path) -> list[np.ndarray | Wait]:
    wake = synth(tts, WAKE_TEXT)
    user = level(load_audio(speech_dir / "spk1_snt4.wav"))
    impostor = level(load_audio(speech_dir / "spk2_snt2.wav"))
    return [silence(1.0), wake, silence(0.8), user, Wait(1.0), synth(tts, TOOL_QUESTION), Wait(3.0),
            wake, silence(0.8), impostor, Wait(1.0)]


def ensure_demo_profile(settings: Settings, run: Path, say: Callable[[str], object] = print) -> Settings:
    """Use the configured profiles if they hold the demo user, else enrol it under runs/<time>/profiles."""
    from agent.identity.profiles import ProfileStore
    from agent.identity.verify import IdentityChecker

    if ProfileStore(settings.path(settings.paths.profiles)).exists(DEMO_USER):
        return settings
    settings = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"profiles": str(run / "profiles")})})
    data = settings.testdata_dir
    if not (data / "faces" / "enroll" / "obama").is_dir() or not (data / "speech").is_dir():
        raise MMChatError(f"demo recordings not found in {data} (paths.testdata in the config; relative paths "
                          "are taken from the config file's folder)", ErrorCode.AUDIO_MISSING)
    faces = sorted((data / "faces" / "enroll" / "obama").iterdir())
    voices = [data / "speech" / f"spk1_snt{i}.wav" for i in (1, 2, 3)]
    profile = IdentityChecker(settings).enroll(DEMO_USER, voices, faces)
    say(f"enrolled '{DEMO_USER}' in {run / 'profiles'}: voice spk1_snt1-3, face obama "
        f"({profile.as_json()['voice_samples']} voice, {profile.as_json()['face_samples']} face samples)")
    return settings


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
    from agent.assistant import Assistant
    from agent.cli.speech import run_dir
    from agent.runner import SessionRunner, build_parts

    if live:  # devices first: a missing microphone or camera fails before any model loads
        from agent.audio.sources import default_input_device
        from agent.gate import make_face_feed
        from agent.runner import close_feed

        default_input_device()
        close_feed(make_face_feed(settings, video, live=True))  # opened again once the models are loaded
    run = run_dir(settings)
    print(f"MMChat demo: hands-free session; reply audio in {run}")
    if live:
        print("live mode: microphone, camera and loudspeaker (Ctrl+C ends the session)")
    settings = ensure_demo_profile(settings, run)
    if not live and video is None and not settings.session.allow_still_face:
        settings = settings.model_copy(update={"session": settings.session.model_copy(
            update={"allow_still_face": True})})
        print("note: the demo's face probe is a still photo, which cannot show liveness; "
              "session.allow_still_face is switched on for this demo only")
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
    (run / "events.json").write_text(json.dumps({"events": events}, ensure_ascii=False, indent=1))
    print(f"events written to {run / 'events.json'}")
    return events

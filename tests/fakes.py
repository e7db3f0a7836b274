"""Fakes and helpers shared by the session tests: plumbing stand-ins, never the only test of a capability.

``compose`` builds a session recording from real speech; ``run_fake`` runs the real session
(VAD, wake word, conductor, TTS) with fake stages where a test needs control.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings, load_settings
from agent.identity.verify import Decision
from agent.session.runner import Parts, SessionRunner
from agent.session.scripted import silence
from agent.session.stages import make_source, make_vad, make_wake
from agent.think.controller import TurnResult
from tools import ToolContext
from tools.common.pcm import SAMPLE_RATE as SR

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()
SPEECH, FACES = TESTDATA / "speech", TESTDATA / "faces"


def settings_for(profiles: Path, identity: dict | None = None, **session: object) -> Settings:
    """config.yaml with the profiles in ``profiles`` and ``identity``/``session`` overrides; a session section
    is a dict merged key by key, e.g. ``settings_for(p, face={"allow_still": True})``."""
    return load_settings(ROOT / "config.yaml", overrides={"paths": {"profiles": str(profiles)},
                                                         "identity": identity or {}, "session": session})


def enrol_owner(settings: Settings, name: str = "demo", passphrase: str | None = None) -> Settings:
    """Enrol the shared owner: spk1's voice (snt1-3) and Obama's face (+ a passphrase), real models."""
    from agent.identity.verify import IdentityChecker

    IdentityChecker(settings).enroll(name, [SPEECH / f"spk1_snt{i}.wav" for i in (1, 2, 3)],
                                     sorted((FACES / "enroll" / "obama").iterdir()), passphrase=passphrase)
    return settings


def compose(wake: np.ndarray, *rest: np.ndarray | str, gap: float = 0.8) -> np.ndarray:
    from tools.common.pcm import level

    parts = [silence(1.0), wake, silence(gap)]
    for r in rest:
        parts += [level(load_audio(SPEECH / r)) if isinstance(r, str) else r, silence(0.3)]
    return np.concatenate(parts + [silence(1.0)])


# -- fakes for plumbing --------------------------------------------------------------------------
class FakeGate:
    feed = None  # no face feed: nothing to sync or close

    def __init__(self, accept: bool = True, face: bool = True) -> None:
        self.accept, self.face, self.calls = accept, face, 0

    def check(self, audio, t):  # noqa: ANN001, ANN201
        self.calls += 1
        if self.accept:
            return Decision("accept", "demo", "fake accept", "")
        return Decision("reject", None, "fake reject", "Sorry, I can't unlock: fake.")

    def face_present(self, t: float) -> bool:
        return self.face


class FakeASR:
    """The next text for each new turn; a turn transcribed again (at a pause, then whole) keeps its text."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.calls = list(texts), 0
        self.seen: dict[bytes, str] = {}

    def transcribe(self, audio):  # noqa: ANN001, ANN201
        from agent.listen.asr import Transcript

        self.calls += 1
        key = np.asarray(audio[: SR // 2], np.float32).tobytes()  # a turn's audio starts the same each time
        if key not in self.seen:
            self.seen[key] = self.texts.pop(0) if self.texts else "hello again"
        return Transcript(self.seen[key], "en", len(audio) / SR)


class FakeController:
    """Speaks fixed sentences; optionally switches mode like the set_mode tool would."""

    def __init__(self, sentences: list[str], ctx: ToolContext | None = None, mode: str | None = None) -> None:
        self.sentences, self.ctx, self.mode, self.calls = sentences, ctx, mode, []

    def respond(self, text, emotion=None, on_sentence=None, cancel=None):  # noqa: ANN001, ANN201
        self.calls.append(text)
        if self.mode and self.ctx:
            self.ctx.set_mode(self.mode)
        for s in self.sentences:
            if cancel is not None and cancel.is_set():
                break
            on_sentence(s)
        return TurnResult(text=text, reply=" ".join(self.sentences))


def run_fake(settings, tts, audio, asr, controller, gate=None, ctx=None, run_dir=None):  # noqa: ANN001, ANN201
    turns, voiced = make_vad(settings)
    parts = Parts(source=make_source(settings, audio), turns=turns, voiced=voiced, wake=make_wake(settings),
                  gate=gate or FakeGate(), asr=asr, controller=controller, tts=tts, face_checks=False,
                  tool_context=ctx or ToolContext())
    runner = SessionRunner(settings, parts, run_dir)
    return runner.run(max_wall_s=120), runner


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms; AssertionError naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)

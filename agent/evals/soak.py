"""Soak: the hands-free session over looped recorded audio for N minutes of stream time.

One cycle: the wake word (Piper), two commands of the enrolled speaker (testdata spk1), low noise,
then silence until the idle timeout locks the session. The real stages run (wake word, VAD, the
voice + face gate with the demo user's photo, ASR, LLM, TTS); the stream runs in file mode (no
waiting between frames). Every ``sample_s`` the process's RSS and thread count are recorded.
Pass: every command answered, RSS after warm-up (the end of the first cycle) grows < 5 %, no more
threads at the end than after warm-up. The gate's face feed is a still photo. With ``camera=True``
(``--camera``) the camera stage also runs, on the wall clock, over the Hamilton clip's frames 81-228
(a person in view) looped: faces, emotion (which styles the replies), hands and objects, gestures off
(the clip's held fist would select privacy mode and lock the session); its FPS and dropped frames are
reported; there the second command of a cycle waits until the assistant is quiet (styled replies run
longer than the 3 s gap). Run: ``main.py soak --minutes N [--camera] --json``.
"""
from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings
from agent.listen.sources import frames_of
from tools.common.pcm import SAMPLE_RATE, to_float

COMMANDS = ("spk1_snt4.wav", "spk1_snt3.wav")
ENROL = ("spk1_snt1.wav", "spk1_snt2.wav")
CLIP = ("faces/probe/short_hamilton_clip.mp4", (81, 229))  # testdata path, frames played (a person in view)


class LoopSource:
    """One cycle of audio streamed ``cycles`` times (file mode: no pacing)."""

    realtime = False

    def __init__(self, cycle: np.ndarray, cycles: int, frame_ms: int = 30, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        pad = -len(cycle) % self.frame_samples
        self.cycle = np.pad(to_float(cycle), (0, pad))
        self.cycles = cycles

    def __len__(self) -> int:
        return self.cycles * len(self.cycle) // self.frame_samples

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.cycles):
            yield from frames_of(self.cycle, self.frame_samples)


def proc_stats() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"])}


def cycle_parts(settings: Settings, tts: Any, wait: bool = False) -> list[Any]:
    """One cycle as script parts; ``wait``: each command after the first waits until the assistant is
    quiet (agent.session.scripted.Wait), else follows 3 s after the one before."""
    from agent.session.scripted import Wait, silence, synth
    from tools.common.pcm import level

    speech = settings.testdata_dir / "speech"
    rng = np.random.default_rng(0)
    parts: list[Any] = [silence(1.0), synth(tts, "Hey Jarvis."), silence(0.8)]
    for i, name in enumerate(COMMANDS):
        parts += [level(load_audio(speech / name)), Wait(1.0) if wait and i < len(COMMANDS) - 1 else silence(3.0)]
    parts += [(0.003 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32),
              silence(settings.session.idle_timeout_s + 3.0)]  # noise, then the idle timeout locks
    return parts


def cycle_audio(settings: Settings, tts: Any) -> np.ndarray:
    return np.concatenate(cycle_parts(settings, tts))


def camera_hook(settings: Settings, ctx: Any) -> Any:
    """The camera stage over the looped clip, gestures and mapping off (a PerceptionHook for ``Parts``)."""
    from agent.session.perception import PerceptionHook
    from tools.vision.capture import open_source

    path, frames = CLIP
    return PerceptionHook(settings, ctx, source=open_source(settings.testdata_dir / path, loop=True, frames=frames))


def camera_stats(hook: Any, wall_s: float) -> dict[str, Any]:
    """What the camera stage did over the run: frames read, analysed, dropped, failed; analysed per second."""
    stage = hook.stage
    if stage is None:
        return {"ok": False, "error": "camera stage did not start"}
    return {"frames_read": stage.frames_read, "frames_processed": stage.frames_processed,
            "frames_dropped": stage.frames_dropped, "frame_errors": stage.frame_errors,
            "fps": round(stage.frames_processed / wall_s, 2), "error": str(stage.error) if stage.error else None,
            "ok": stage.frames_processed > 0 and stage.error is None and not stage.running}


def soak(settings: Settings, minutes: float, sample_s: float = 2.0, camera: bool = False) -> dict[str, Any]:
    from agent.identity.gate import IdentityGate, ImageFace
    from agent.identity.verify import IdentityChecker
    from agent.session.assistant import Assistant
    from agent.session.runner import SessionRunner, build_parts

    with tempfile.TemporaryDirectory() as tmp:
        s = settings.model_copy(update={
            "paths": settings.paths.model_copy(update={"profiles": str(Path(tmp) / "profiles"), "runs": tmp}),
            "session": settings.session.model_copy(update={"allow_still_face": True})})
        faces = s.testdata_dir / "faces"
        checker = IdentityChecker(s)
        checker.enroll("soak", [s.testdata_dir / "speech" / n for n in ENROL],
                       sorted((faces / "enroll" / "obama").iterdir()))
        assistant = Assistant(s)
        cycle = cycle_audio(s, assistant.tts)
        cycles = max(1, math.ceil(minutes * 60 * SAMPLE_RATE / len(cycle)))
        gate = IdentityGate(s, ImageFace(faces / "probe" / "obama_small.jpg"), checker)
        gate.warm_up()
        audio: Any = LoopSource(cycle, cycles, s.vad.frame_ms)
        if camera:  # styled replies (the face's emotion) run longer: the second command waits for the reply
            from agent.session.scripted import ScriptedSource

            audio = ScriptedSource(cycle_parts(s, assistant.tts, wait=True) * cycles, s.vad.frame_ms,
                                   settle_s=s.vad.end_silence_ms / 1000 + 0.9)
        parts = build_parts(s, audio=audio, assistant=assistant, gate=gate)
        if camera:
            parts.perception = camera_hook(s, parts.tool_context)
        samples: list[dict[str, float]] = []
        done = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not done.wait(sample_s):
                samples.append({"t_s": round(time.monotonic() - t0, 1), **proc_stats()})

        sampler = threading.Thread(target=sample, daemon=True)
        start = proc_stats()
        sampler.start()
        events = SessionRunner(s, parts, Path(tmp) / "run").run(max_wall_s=max(600.0, minutes * 60 * 10))
        done.set()
        sampler.join()
        end = proc_stats()
    wall = time.monotonic() - t0
    replies = [e for e in events if e["type"] == "reply"]
    unlocks = sum(e["type"] == "unlock" for e in events)
    # warm-up: the first cycle's share of the run (models load, caches fill)
    warm = next((x for x in samples if x["t_s"] >= wall / cycles), samples[0] if samples else start)
    growth = (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
    expected = cycles * len(COMMANDS)
    cam = camera_stats(parts.perception, wall) if camera else None
    out = {"minutes_stream": round(cycles * len(cycle) / SAMPLE_RATE / 60, 2), "wall_s": round(wall, 1),
            "cycles": cycles, "commands": expected, "answered": len(replies), "unlocks": unlocks,
            "errors": [e for e in events if e["type"] == "error"][:5],
            "rss_mb": {"start": start["rss_mb"], "after_warm_up": warm["rss_mb"], "end": end["rss_mb"],
                       "growth_after_warm_up": round(growth, 4)},
            "threads": {"start": start["threads"], "after_warm_up": warm["threads"], "end": end["threads"]},
            "samples": samples}
    if cam is not None:
        out["camera"] = cam
    out["ok"] = len(replies) >= expected and growth < 0.05 and end["threads"] <= warm["threads"] \
        and (cam is None or cam["ok"])
    return out

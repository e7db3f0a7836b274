"""Soak: the hands-free session over a looped recorded conversation for N minutes of stream time.

One cycle: the wake word (Piper), two commands of the enrolled speaker (testdata spk1; the second
waits until the assistant is quiet), low noise, then silence until the idle timeout locks the
session. The real stages run (wake word, VAD, the voice + face gate with the demo user's photo, ASR,
LLM, TTS); the stream runs in file mode (no waiting between frames). Every ``sample_s`` the
process's RSS and thread count are recorded. Pass: every command answered (a reply with words,
played to its end), RSS after warm-up (the end of the first cycle) grows < 5 %, no more threads at
the end than after warm-up. The gate's face feed is a still photo. With ``camera=True``
(``--camera``) the camera stage also runs, on the wall clock, over the Hamilton clip's frames 81-228
(a person in view) looped: faces, emotion (which styles the replies), hands and objects, gestures off
(the clip's held fist would select privacy mode and lock the session); its FPS and dropped frames are
reported. Run: ``main.py soak --minutes N [--camera] --json``.
"""
from __future__ import annotations

import ctypes
import functools
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.audio_io import load_audio
from agent.common.config import Settings, replaced
from tools.common.pcm import SAMPLE_RATE

COMMANDS = ("spk1_snt4.wav", "spk1_snt3.wav")
ENROL = ("spk1_snt1.wav", "spk1_snt2.wav")
CLIP = ("faces/probe/short_hamilton_clip.mp4", (81, 229))  # testdata path, frames played (a person in view)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@functools.cache
def _mallinfo2() -> Any:
    """glibc's ``mallinfo2`` (None off glibc or before 2.33)."""
    try:
        f = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = _MallInfo2
    return f


def heap_stats() -> dict[str, float]:
    """glibc's malloc heap (all arenas): MB handed out (``in_use``, incl. mmapped blocks) and MB held
    free inside the arenas (``free``: growth there is fragmentation, not a leak); {} off glibc."""
    f = _mallinfo2()
    if f is None:
        return {}
    m = f()
    return {"heap_in_use_mb": round((m.uordblks + m.hblkhd) / 2**20, 1), "heap_free_mb": round(m.fordblks / 2**20, 1)}


def proc_stats() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            **heap_stats()}


def cycle_parts(settings: Settings, tts: Any) -> list[Any]:
    """One cycle as script parts: the wake word, the commands (each after the first waits until the
    assistant is quiet: agent.session.scripted.Wait), low noise, then the idle timeout's silence."""
    from agent.session.scripted import Wait, silence, synth
    from tools.common.pcm import level

    speech = settings.testdata_dir / "speech"
    rng = np.random.default_rng(0)
    parts: list[Any] = [silence(1.0), synth(tts, "Hey Jarvis."), silence(0.8)]
    for i, name in enumerate(COMMANDS):
        parts += [level(load_audio(speech / name)), Wait(1.0) if i < len(COMMANDS) - 1 else silence(3.0)]
    parts += [(0.003 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32),
              silence(settings.session.turns.idle_timeout_s + 3.0)]  # noise, then the idle timeout locks
    return parts


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
    from agent.session.scripted import ScriptedSource

    with tempfile.TemporaryDirectory() as tmp:
        s = replaced(replaced(settings, "paths", profiles=str(Path(tmp) / "profiles"), runs=tmp),
                     "session.face", allow_still=True)
        faces = s.testdata_dir / "faces"
        checker = IdentityChecker(s)
        checker.enroll("soak", [s.testdata_dir / "speech" / n for n in ENROL],
                       sorted((faces / "enroll" / "obama").iterdir()))
        assistant = Assistant(s)
        cycle = cycle_parts(s, assistant.tts)
        cycle_samples = sum(len(p) for p in cycle if isinstance(p, np.ndarray))  # + the waits for replies
        cycles = max(1, math.ceil(minutes * 60 * SAMPLE_RATE / cycle_samples))
        gate = IdentityGate(s, ImageFace(faces / "probe" / "obama_small.jpg"), checker)
        gate.warm_up()
        audio = ScriptedSource(cycle * cycles, s.vad.frame_ms, settle_s=s.vad.end_silence_ms / 1000 + 0.9)
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
    # answered: a reply with words that was played to its end (an interrupted one does not count)
    replies = [e for e in events if e["type"] == "reply" and e.get("text") and not e.get("interrupted")]
    unlocks = sum(e["type"] == "unlock" for e in events)
    # warm-up: the first cycle's share of the run (models load, caches fill)
    warm = next((x for x in samples if x["t_s"] >= wall / cycles), samples[0] if samples else start)
    growth = (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
    expected = cycles * len(COMMANDS)
    cam = camera_stats(parts.perception, wall) if camera else None
    out = {"minutes_stream": round(events[-1].get("stream_s", 0.0) / 60, 2) if events else 0.0, "wall_s": round(wall, 1),
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

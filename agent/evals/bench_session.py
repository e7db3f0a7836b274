"""``main.py bench --only session``: answer latency of the real hands-free session, per emotion style.

Each emotion gets one whole session (SessionRunner, real models, the recording read in real time as a
microphone would deliver it): a Piper "hey jarvis", the enrolled user's real question (spk1_snt4: the
first unlocked turn, greeting included), Piper follow-ups without a tool, and one that calls
``describe_scene`` (the camera shows the user's photo, so the reply needs a second LLM pass). The
style is fixed per session, as if the camera saw that emotion. Figures come from the session's own
``reply`` events: ``first_audio_s`` is end of the user's turn (VAD end-of-speech) -> first audio of
the answer; ``asr_wait_s`` on the transcript event is how long the transcript took after it.
"""
from __future__ import annotations

import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.common.config import Settings, replaced
from agent.evals.stats import figure

log = logging.getLogger(__name__)
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "worried")
NO_TOOL = ("Can you suggest something to do this evening?", "How do I make a good cup of tea?",
           "What is a nice name for a cat?")
TOOL = ("What do you see right now?", "Describe what is in front of the camera.")


def _script(tts: Any, speech: Path, n_no_tool: int, n_tool: int) -> list:
    from agent.common.audio_io import load_audio
    from agent.session.scripted import Wait, silence, synth
    from tools.common.pcm import level

    parts: list = [silence(1.0), synth(tts, "Hey Jarvis."), silence(0.8), level(load_audio(speech / "spk1_snt4.wav")),
                   Wait(1.0)]
    for text in NO_TOOL[:n_no_tool] + TOOL[:n_tool]:
        parts += [synth(tts, text), Wait(1.0)]
    return parts


def _session(settings: Settings, assistant: Any, emotion: str, script: list) -> list[dict]:
    from agent.session.runner import SessionRunner, build_parts
    from agent.session.scripted import ScriptedSource

    source = ScriptedSource(script, settings.vad.frame_ms, settle_s=settings.vad.end_silence_ms / 1000 + 0.9,
                            realtime=True)
    face = settings.testdata_dir / "faces" / "enroll" / "obama" / "obama.jpg"
    parts = build_parts(settings, audio=source, face=str(face), realtime=True, assistant=assistant)
    assistant.controller.history.clear()
    return SessionRunner(settings, parts, emotion=emotion).run(max_wall_s=240)


def _stage_values(events: list[dict], acc: dict[str, list[float | None]]) -> None:
    """Where the time of each answered turn went (seconds after the end of the user's turn)."""
    waits = [e.get("asr_wait_s") for e in events if e["type"] == "transcript"]
    replies = [e for e in events if e["type"] == "reply"]
    for wait, r in zip(waits, replies):
        t = r.get("timings", {})
        first = t.get("llm_first_sentence_s", t.get("reply_first_sentence_s"))
        acc.setdefault("asr_wait_s", []).append(wait)
        for key in ("router_s", "llm_first_token_s", "llm_prompt_tokens", "llm_prompt_eval_s", "tool_s",
                    "reply_prompt_tokens", "reply_prompt_eval_s"):
            if key in t:
                acc.setdefault(key, []).append(t[key])
        if first is not None:
            acc.setdefault("first_clause_s", []).append(first)
            if r.get("first_audio_s") is not None and wait is not None:
                acc.setdefault("tts_and_queue_s", []).append(r["first_audio_s"] - wait - first)


def bench_session(settings: Settings, repeat: int) -> dict:
    from agent.session.assistant import Assistant
    from agent.session.scripted import ensure_demo_profile

    t0 = time.perf_counter()
    run = Path(tempfile.mkdtemp(prefix="mmchat-bench-session-"))
    settings = ensure_demo_profile(settings, run, say=log.info)
    settings = replaced(settings, "session.face", allow_still=True)  # the camera is a still photo here
    assistant = Assistant(settings)
    _ = assistant.asr, assistant.tts, assistant.controller
    ready = time.perf_counter() - t0
    script = _script(assistant.tts, settings.testdata_dir / "speech", min(len(NO_TOOL), max(1, repeat)),
                     1 if repeat < 3 else 2)
    no_tool: dict[str, list[float | None]] = {}
    tool: list[float | None] = []
    first_turn: list[float | None] = []
    stages: dict[str, list[float | None]] = {}
    unlocked = 0
    for emotion in EMOTIONS:
        events = _session(settings, assistant, emotion, script)
        unlocked += any(e["type"] == "unlock" for e in events)
        replies = [e for e in events if e["type"] == "reply"]
        for i, r in enumerate(replies):
            bucket = tool if r.get("tool_calls") or _called(events, r) else no_tool.setdefault(emotion, [])
            bucket.append(r.get("first_audio_s"))
            if i == 0:
                first_turn.append(r.get("first_audio_s"))
        _stage_values(events, stages)
    llm = f"{settings.llm.backend}:{settings.llm.model}"
    out = {"session_answer_s": figure([v for vs in no_tool.values() for v in vs], llm=llm),
           "session_tool_answer_s": figure(tool, llm=llm),
           "session_first_turn_s": figure(first_turn, greeting=True),
           "session_ready_s": figure([ready], note="models loaded and warm, from the start of the bench"),
           "session_unlocked": figure([float(unlocked)], unit="sessions", of=len(EMOTIONS)),
           "session_peak_rss_mb": figure([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], unit="MB")}
    for emotion, values in no_tool.items():
        out[f"session_answer_s.{emotion}"] = figure(values)
    for key, values in stages.items():
        unit = "tokens" if key.endswith("tokens") else "s"
        out[f"session_stage.{key}"] = figure(values, unit=unit)
    return out


def _called(events: list[dict], reply: dict) -> bool:
    """Whether a tool_call event came just before this reply (they share the reply's time)."""
    return any(e["type"] == "tool_call" and e["t"] == reply["t"] for e in events)

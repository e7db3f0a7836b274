"""Can a synthetic voice pass the voice check? Piper and espeak-ng commands against enrolled models.

Every enrolment model of the EER corpora (the mean of ``ENROL_N`` utterances of one real speaker,
agent/evals/same_channel.py ``rotations``) is scored against commands read by the installed
Piper voice (three speeds) and espeak-ng voices (Debian ``espeak-ng``; skipped when absent).
A synthetic voice is one fixed speaker: it cannot be the owner unless the owner enrolled with it,
so every such trial is an impostor trial; the face + liveness check is what stops a replay.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from agent.common.config import Settings
from agent.evals.eer import ENROL_N

COMMANDS = ("What is the weather like in the garden this afternoon?",
            "Please turn on the lights in the kitchen and play some music.",
            "Remind me to call my sister tomorrow morning at nine.")
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb", "en-gb+m3")


def synthetic_commands(settings: Settings) -> list[tuple[str, np.ndarray]]:
    """(name, 16 kHz audio) of every command in every synthetic voice installed here."""
    from agent.evals.wake_eval import espeak_phrases, piper_phrases

    out = piper_phrases(settings, COMMANDS, (0.85, 1.0, 1.2))
    for text in COMMANDS:
        out += [(f"{name}:{text[:12]}", a) for name, a in espeak_phrases(text, ESPEAK_VOICES, (150,), (40, 60))]
    return out


def synthetic_report(vp: Any, settings: Settings, embs: np.ndarray, speakers: list[str], threshold: float,
                     probe_s: float = 2.0) -> dict:
    """Scores of the synthetic commands (whole and first ``probe_s`` s of speech) against every model."""
    from agent.evals.same_channel import rotations
    from agent.identity.voiceprint import mean_embedding
    from tools.common.pcm import SAMPLE_RATE, speech_only

    voices = synthetic_commands(settings)
    models = np.stack([mean_embedding(embs[idx]) for _, _, idx in rotations(speakers, ENROL_N)])
    out: dict = {"voices": sorted({":".join(n.split(":")[:2]) if n.startswith("espeak") else
                                   f"piper:{settings.tts.voice}:{n.split(':')[-1]}" for n, _ in voices}),
                 "commands": len(voices), "models": int(models.shape[0]), "threshold": threshold}
    for key, cut in (("whole", None), (f"first_{probe_s:g}_s", int(probe_s * SAMPLE_RATE))):
        speech = [speech_only(a, settings.identity.min_speech_s, n) for n, a in voices]
        scores = np.stack([models @ vp.embed(s[:cut]) for s in speech])  # commands x models
        best = scores.max(axis=1)
        out[key] = {"trials": int(scores.size), "accepts": int((scores >= threshold).sum()),
                    "commands_accepted_by_some_model": int((best >= threshold).sum()),
                    "score_median_max": [round(float(np.median(scores)), 3), round(float(scores.max()), 3)],
                    "worst": voices[int(best.argmax())][0]}
    return out

"""``profile: small | balanced | accurate``: one set of model variants, picked from the compression table.

Each profile is a set of config keys (the same keys ``main.py bench --only compression`` varies,
agent/evals/compression.py); keys written in config.yaml win over the profile's. The figures
behind each choice are in the README ("Smaller and faster: model profiles").
"""
from __future__ import annotations

from typing import Any, Literal

Profile = Literal["small", "balanced", "accurate"]
DEFAULT_PROFILE: Profile = "balanced"

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Chosen on `main.py bench --only compression --json` (README "Model profiles"): per model, the
    # fastest variant whose quality on the project's own evaluation holds for that profile.
    "small": {  # least memory and CPU: a Pi-class box or a drone's companion computer
        "llm": {"model": "qwen2.5-coder-0.5b"},  # 491 MB, 2.3x faster; tool routing 85.7 % (1.5B: 98.0 %)
        "asr": {"model": "tiny.en", "compute_type": "int8"},
        "identity": {"voiceprint_model": "onnx"},  # int8 ECAPA was 2.7x slower here (EER 2.58 vs 2.36 %)
        "vision": {"emotion_model": "mini_xception-int8"},  # static int8: 94 % same top emotion
        "detector": {"model": "nanodet-m-416-int8"},  # static int8: 46 vs 88 ms, F1 0.95 vs fp32
        "controller": {"router_model": "onnx-int8dyn"},  # 2.8 ms, same router accuracy
    },
    "balanced": {  # the default
        "llm": {"model": "qwen2.5-coder-1.5b-q4_0"},  # 27 % faster median than Q4_K, tool 96.9 %, args equal
        "asr": {"model": "tiny.en", "compute_type": "int8"},
        "identity": {"voiceprint_model": "onnx"},  # same embeddings as torch (cosine 1.0), faster
        "vision": {"emotion_model": "mini_xception"},
        "detector": {"model": "nanodet-m-416"},  # int8 misses objects (fruit) the fp32 model finds
        "controller": {"router_model": "onnx"},
    },
    "accurate": {  # the reference variants, and Whisper base
        "llm": {"model": "qwen2.5-coder-1.5b"},  # the shipped Q4_K_M
        "asr": {"model": "base", "compute_type": "int8_float32"},  # WER 8.7 % vs 10.7 % (tiny.en), as float32
        "identity": {"voiceprint_model": "torch"},  # what identity.voice_threshold was chosen on
        "vision": {"emotion_model": "mini_xception"},
        "detector": {"model": "nanodet-m-416"},
        "controller": {"router_model": "onnx"},
    },
}


def apply_profile(data: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """``data`` (config.yaml's mapping) with the chosen profile's keys filled in where it sets none.

    ``profile`` overrides the file's ``profile`` key; an unknown name is left for validation to refuse.
    """
    name = profile or data.get("profile") or DEFAULT_PROFILE
    out = {**data, "profile": name}
    for section, values in PROFILES.get(name, {}).items() if isinstance(name, str) else ():
        mine = out.get(section)
        if mine is None:
            out[section] = dict(values)
        elif isinstance(mine, dict):
            out[section] = {**values, **mine}
    return out

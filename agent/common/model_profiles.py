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
    "small": {
        "llm": {"model": "qwen2.5-coder-0.5b"},
        "asr": {"model": "tiny.en", "compute_type": "int8"},
        "identity": {"voiceprint_model": "onnx-int8dyn"},
        "vision": {"emotion_model": "mini_xception-int8"},
        "detector": {"model": "nanodet-m-416-int8"},
        "controller": {"router_model": "onnx-int8dyn"},
    },
    "balanced": {
        "llm": {"model": "qwen2.5-coder-1.5b"},
        "asr": {"model": "tiny.en", "compute_type": "int8"},
        "identity": {"voiceprint_model": "onnx"},
        "vision": {"emotion_model": "mini_xception"},
        "detector": {"model": "nanodet-m-416-int8"},
        "controller": {"router_model": "onnx"},
    },
    "accurate": {
        "llm": {"model": "qwen2.5-coder-1.5b"},
        "asr": {"model": "base", "compute_type": "float32"},
        "identity": {"voiceprint_model": "torch"},
        "vision": {"emotion_model": "mini_xception"},
        "detector": {"model": "nanodet-m-416"},
        "controller": {"router_model": "torch"},
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

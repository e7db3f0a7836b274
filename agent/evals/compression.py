"""``main.py bench --only compression``: size, load time, peak RSS, latency and quality per model x variant.

Every variant is a set of config overrides (the same keys the ``profile`` switch sets) and is
measured in a fresh subprocess (agent/evals/compression_measure.py), so its load time and peak
RSS are its own. Quality is each model's own evaluation on real data: tool-routing accuracy (LLM),
WER (Whisper), EER (ECAPA), router accuracy (MiniLM), detections (NanoDet); the emotion model and
the other ones are also compared with their reference variant (the first listed) on the same inputs.
``MMCHAT_COMPRESSION=quick`` (or ``bench --repeat 1``) subsamples every evaluation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.common.config import Settings
from agent.common.models import ECAPA_DIR, ECAPA_NETWORKS, LLM_FILES, MINILM_DIR, MINILM_FILES, WHISPER_DIRS

TIMEOUT_S = 1800


@dataclass(frozen=True)
class Variant:
    model: str  # llm | whisper | ecapa | emotion | detector | router
    name: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def _llm(name: str) -> Variant:
    return Variant("llm", name, {"llm": {"model": name}})


VARIANTS: tuple[Variant, ...] = (
    _llm("qwen2.5-coder-1.5b"), _llm("qwen2.5-coder-1.5b-q4_0"), _llm("qwen2.5-coder-1.5b-q3_k_m"),
    _llm("qwen2.5-coder-1.5b-q2_k"), _llm("qwen2.5-coder-0.5b"),
    *(Variant("whisper", f"{m} {ct}", {"asr": {"model": m, "compute_type": ct}})
      for m in ("tiny.en", "base") for ct in ("int8", "int8_float32", "float32")),
    *(Variant("ecapa", v, {"identity": {"voiceprint_model": v}}) for v in ("torch", "onnx", "onnx-int8dyn")),
    *(Variant("emotion", v, {"vision": {"emotion_model": v}})
      for v in ("mini_xception", "mini_xception-int8dyn", "mini_xception-int8")),
    *(Variant("detector", v, {"detector": {"model": v}})
      for v in ("nanodet-m-416", "nanodet-m-416-int8dyn", "nanodet-m-416-int8")),
    *(Variant("router", v, {"controller": {"router_model": v}})
      for v in ("torch", "torch-int8", "onnx", "onnx-int8dyn")),
)


def variant_files(s: Settings, v: Variant) -> list[Path]:
    """The files on disk that this variant loads (its size)."""
    m, o = s.models_dir, next(iter(v.overrides.values()), {})
    if v.model == "llm":
        return [m / LLM_FILES[o["model"]]]
    if v.model == "whisper":
        return [m / WHISPER_DIRS[o["model"]] / "model.bin"]
    if v.model == "ecapa":
        return [m / ECAPA_DIR / ECAPA_NETWORKS[o["voiceprint_model"]]]
    if v.model == "emotion":
        return [m / "fer-emotion" / f"{o['emotion_model']}.onnx"]
    if v.model == "detector":
        return [m / f"{o['model']}.onnx"]
    if o["router_model"].startswith("torch"):
        from agent.think.sentence_encoders import minilm_dir

        return [minilm_dir() / "model.safetensors"]
    return [m / MINILM_DIR / MINILM_FILES[o["router_model"]]]


def _agreement(model: str, ref: list, got: list) -> dict[str, float]:
    """How close a variant's outputs are to the reference variant's on the same inputs."""
    if model == "emotion":
        a, b = np.asarray(ref), np.asarray(got)
        return {"top_agreement": round(float((a.argmax(1) == b.argmax(1)).mean()), 4),
                "mean_abs_prob_diff": round(float(np.abs(a - b).mean()), 4)}
    if model == "ecapa":
        a, b = np.asarray(ref), np.asarray(got)
        return {"min_cosine_to_ref": round(float((a * b).sum(1).min()), 4)}
    if model == "detector":
        return {"f1_vs_ref": _box_f1(ref, got)}
    if model in ("router", "whisper"):
        return {"same_as_ref": round(float(np.mean([x == y for x, y in zip(ref, got)])), 4)}
    return {}


def _box_f1(ref: list, got: list, iou_min: float = 0.5) -> float:
    tp = n_ref = n_got = 0
    for r_img, g_img in zip(ref, got):
        n_ref, n_got = n_ref + len(r_img), n_got + len(g_img)
        used: set[int] = set()
        for r in r_img:
            for j, g in enumerate(g_img):
                if j not in used and g[0] == r[0] and _iou(r[2:], g[2:]) >= iou_min:
                    used.add(j)
                    tp += 1
                    break
    return round(2 * tp / max(n_ref + n_got, 1), 4)


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run_variant(s: Settings, v: Variant, quick: bool) -> dict[str, Any]:
    """Measure one variant in a fresh interpreter; its JSON, or ``{"error": ...}``."""
    cmd = [sys.executable, "-m", "agent.evals.compression_measure", v.model, json.dumps(v.overrides)]
    cmd += ["--quick"] if quick else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=s.root, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S} s"}
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def compression_table(s: Settings, quick: bool = False, only: set[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"compression.machine": {"cpus": os.cpu_count(), "loadavg_start": _loadavg(),
                                                   "quick": quick}}
    refs: dict[str, list] = {}
    for v in VARIANTS:
        if only and v.model not in only:
            continue
        files = variant_files(s, v)
        missing = [str(f) for f in files if not f.exists()]
        key = f"compression.{v.model}.{v.name}"
        if missing:
            out[key] = {"error": f"not built: {missing[0]} (run scripts/install.sh)"}
            continue
        r = run_variant(s, v, quick)
        if "error" in r:
            out[key] = r
            continue
        fig = r["figure"]
        quality = dict(r["quality"])
        if v.model in refs:
            quality.update(_agreement(v.model, refs[v.model], r["outputs"]))
        else:
            refs[v.model] = r["outputs"]
        out[key] = {"size_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
                    "load_s": round(r["load_s"], 3), "rss_mb": r["rss_mb"], **fig, "quality": quality,
                    "overrides": v.overrides}
    out["compression.machine"]["loadavg_end"] = _loadavg()
    return out


def bench_compression(settings: Settings, repeat: int) -> dict[str, Any]:
    quick = repeat <= 1 or os.environ.get("MMCHAT_COMPRESSION") == "quick"
    return compression_table(settings, quick)


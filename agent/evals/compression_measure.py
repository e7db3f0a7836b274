"""One model x variant of the compression table, measured in this process (run it fresh).

``python -m agent.evals.compression_measure MODEL '{"section": {"key": value}}' [--quick]`` loads
the settings with those overrides, builds the component through the project's own loader (so
the table measures what the assistant runs), times the load, runs the project's evaluation for
that model on real data, and prints one JSON object: load_s, the per-item latencies, unit,
quality, the outputs the parent compares across variants, and this process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agent.common.config import Settings, load_settings
from agent.evals.stats import figure

ROOT = Path(__file__).resolve().parents[2]
Result = dict[str, Any]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _every(items: list, quick: bool, step: int) -> list:
    return items[::step] if quick else items


def measure_llm(s: Settings, quick: bool) -> Result:
    """Tool routing (agent/evals/tool_routing.py) through the real controller (router + LLM)."""
    from agent.evals.tool_routing import DEFAULT_CASES, evaluate, load_cases
    from agent.session.assistant import Assistant

    cases = _every(load_cases(DEFAULT_CASES), quick, 4)
    ctl, load_s = _timed(lambda: Assistant(s).controller)  # includes the prompt warm-up
    r = evaluate(ctl, cases)
    return {"load_s": load_s, "figure": r["route_s"],
            "quality": {"tool_accuracy": r["tool_accuracy"], "args_accuracy": r["args_accuracy"]},
            "outputs": [e["text"] for e in r["errors"]], "n": len(cases)}


def measure_whisper(s: Settings, quick: bool) -> Result:
    """WER on the transcribed real recordings (agent/evals/phrase_eval.load_recordings)."""
    import jiwer

    from agent.evals.phrase_eval import load_recordings
    from agent.identity.phrase import words
    from agent.listen.asr import WhisperASR

    recs = _every(load_recordings(s.testdata_dir), quick, 3)
    asr, load_s = _timed(lambda: WhisperASR(s.asr, s.models_dir))
    asr.transcribe(recs[0].audio)  # first call allocates; not a per-utterance cost
    hyps, lat = [], []
    for r in recs:
        t, dt = _timed(lambda: asr.transcribe(r.audio).text)
        hyps.append(" ".join(words(t)))
        lat.append(dt)
    refs = [" ".join(words(r.text)) for r in recs]
    return {"load_s": load_s, "figure": figure(lat, "s"),
            "quality": {"wer": round(jiwer.wer(refs, hyps), 4), "words": sum(len(r.split()) for r in refs)},
            "outputs": hyps}


def measure_ecapa(s: Settings, quick: bool) -> Result:
    """EER over every pair of real utterances (agent/evals/eer.py corpora and scoring)."""
    from agent.evals.eer import compute_eer, load_corpora, score_trials
    from agent.identity.voiceprint import EcapaVoiceprint

    utts = load_corpora(s.testdata_dir)
    if quick:
        utts = [u for u in utts if "/" not in u.name and not u.name.startswith("codec2")][:24] or utts[:24]
    vp, load_s = _timed(lambda: EcapaVoiceprint.from_settings(s))
    vp.embed(utts[0].audio)
    embs, lat = [], []
    for u in utts:
        e, dt = _timed(lambda: vp.embed(u.audio))
        embs.append(e)
        lat.append(dt)
    emb = np.stack(embs)
    r = compute_eer(*score_trials(emb, [u.speaker for u in utts]))
    return {"load_s": load_s, "figure": figure(lat, "s"),
            "quality": {"eer": round(r.eer, 4), "eer_threshold": round(r.threshold, 4),
                        "speakers": len({u.speaker for u in utts})},
            "outputs": emb.round(5).tolist()}


def measure_emotion(s: Settings, quick: bool) -> Result:
    """FER probabilities per real face (probe photos, Hamilton clip); agreement is scored by the parent."""
    from agent.evals.compression_data import face_crops
    from tools.vision.emotion import FerEmotion, fer_model_path

    crops = _every(face_crops(s.testdata_dir, "eval"), quick, 3)
    fer, load_s = _timed(lambda: FerEmotion(fer_model_path(s), pad=s.vision.emotion_crop_pad))
    fer.run(FerEmotion.inputs([crops[0][1]]))
    probs, lat = [], []
    for _, c in crops:
        p, dt = _timed(lambda: fer.run(FerEmotion.inputs([c]))[0])
        probs.append(p)
        lat.append(1000 * dt)
    return {"load_s": load_s, "figure": figure(lat, "ms"), "quality": {"faces": len(crops)},
            "outputs": np.stack(probs).round(5).tolist()}


def measure_detector(s: Settings, quick: bool) -> Result:
    """Detections on the shared scenes (photos and street frames no calibration saw)."""
    from agent.evals.compression_data import scene_images
    from tools.vision.detector import load_detector

    scenes = scene_images(s.testdata_dir, quick)
    det, load_s = _timed(lambda: load_detector(s))
    det.detect(scenes[0][1])
    outs, lat = [], []
    for _, img in scenes:
        d, dt = _timed(lambda: det.detect(img))
        outs.append([[x.label, round(x.score, 3), *[round(v, 1) for v in x.box]] for x in d])
        lat.append(1000 * dt)
    persons = sum(1 for o in outs for x in o if x[0] == "person")
    return {"load_s": load_s, "figure": figure(lat, "ms"),
            "quality": {"detections": sum(map(len, outs)), "persons": persons, "images": len(scenes)},
            "outputs": outs}


def measure_router(s: Settings, quick: bool) -> Result:
    """The MiniLM router's intent on the tool-routing cases whose tool it can pick (or none)."""
    from agent.evals.tool_routing import DEFAULT_CASES, load_cases
    from agent.think.router import NONE, ROUTER_TOOLS, load_router

    cases = [c for c in load_cases(DEFAULT_CASES) if c["tool"] in (*ROUTER_TOOLS, None)]
    cases = _every(cases, quick, 3)
    router, load_s = _timed(lambda: load_router(s.controller, s.models_dir))
    router.classify("warm up")
    got, lat = [], []
    for c in cases:
        i, dt = _timed(lambda: router.classify(c["text"]))
        got.append(i.label)
        lat.append(1000 * dt)
    right = sum(g == (c["tool"] or NONE) for g, c in zip(got, cases))
    return {"load_s": load_s, "figure": figure(lat, "ms"),
            "quality": {"router_accuracy": round(right / len(cases), 4)}, "outputs": got}


MEASURES: dict[str, Callable[[Settings, bool], Result]] = {
    "llm": measure_llm, "whisper": measure_whisper, "ecapa": measure_ecapa,
    "emotion": measure_emotion, "detector": measure_detector, "router": measure_router,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=sorted(MEASURES))
    ap.add_argument("overrides", help="JSON object of config sections to override")
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = load_settings(a.config, overrides=json.loads(a.overrides))
    r = MEASURES[a.model](settings, a.quick)
    r["rss_mb"] = peak_rss_mb()
    json.dump(r, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

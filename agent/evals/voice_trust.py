"""The voiceprint trust report: EER on the corpora, same-channel impostors, synthetic voices.

``measure`` embeds every corpus with the production pipeline (VAD + ECAPA) and adds the
same-channel trials (agent/evals/same_channel.py) and, on request, Piper/espeak-ng commands
(agent/evals/synthetic.py). Run: ``python -m agent.evals.voice_trust [--json] [--norm asnorm]
[--cohort-k 5,10,20] [--no-same-channel] [--synthetic]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.evals.eer import (
    ENROL_N,
    Utterance,
    asnorm_report,
    compute_eer,
    enrolled_report,
    enrolled_trials,
    load_corpora,
    score_trials,
)
from tools.common.errors import MMChatError
from tools.common.pcm import SAMPLE_RATE

if TYPE_CHECKING:
    from agent.common.config import Settings


def measure(testdata: Path, models_dir: Path, min_speech_s: float = 1.0, norm: str = "none",
            cohort_k: tuple[int, ...] = (5, 10, 20), configured: float | None = None,
            short_probes_s: tuple[float, ...] = (1.0, 1.5), same_channel: bool = True,
            synthetic: bool = False, settings: "Settings | None" = None) -> dict:
    """Embed all corpora with the production pipeline (VAD + ECAPA) and compute the EER
    (``same_channel``: also the same-channel impostor trials of agent/evals/same_channel.py;
    ``synthetic``: Piper/espeak-ng commands against every model, agent/evals/synthetic.py)."""
    from agent.identity.voiceprint import ECAPA_DIR, EcapaVoiceprint
    from tools.common.pcm import speech_only

    vp = EcapaVoiceprint(models_dir / ECAPA_DIR)
    kept: list[Utterance] = []
    embs: list[np.ndarray] = []
    speech: list[np.ndarray] = []
    skipped: list[str] = []
    t0 = time.perf_counter()
    for u in load_corpora(testdata):
        try:
            speech.append(speech_only(u.audio, min_speech_s, u.name))
            embs.append(vp.embed(speech[-1]))
            kept.append(u)
        except MMChatError:
            skipped.append(u.name)
    secs = time.perf_counter() - t0
    speakers, e = [u.speaker for u in kept], np.stack(embs)
    genuine, impostor = score_trials(e, speakers)
    out = {**compute_eer(genuine, impostor).as_json(),
           "utterances": len(kept), "speakers": len({u.speaker for u in kept}), "skipped": skipped,
           "genuine_min_median": [round(min(genuine), 3), round(float(np.median(genuine)), 3)],
           "impostor_median_max": [round(float(np.median(impostor)), 3), round(max(impostor), 3)],
           "embed_s_per_utterance": round(secs / max(1, len(kept) + len(skipped)), 3)}
    out["enrolled"] = {"protocol": f"probe vs mean of {ENROL_N} enrolment utterances (as the gate scores)",
                       "speakers": len({s for s in speakers if speakers.count(s) > ENROL_N}),
                       "full": enrolled_report(*enrolled_trials(e, speakers), configured)}
    for probe_s in short_probes_s:  # commands are short: the same probes cut to their first seconds of speech
        probes = np.stack([vp.embed(a[:int(probe_s * SAMPLE_RATE)]) for a in speech])
        out["enrolled"][f"first_{probe_s:g}_s"] = enrolled_report(*enrolled_trials(e, speakers, probes), configured)
    if norm == "asnorm":
        out["asnorm"] = asnorm_report(e, speakers, cohort_k)
    if same_channel:
        from agent.evals.same_channel import groups, measure_same_channel

        cohort = [i for i, s in enumerate(speakers) if not s.startswith("sb-")]  # not testdata's speakers
        out["same_channel"] = measure_same_channel(
            vp, groups(kept), e[cohort], [speakers[i] for i in cohort], min_speech_s, configured,
            ks=cohort_k if norm == "asnorm" else ())
    if synthetic:
        from agent.common.config import load_settings
        from agent.evals.synthetic import synthetic_report

        out["synthetic"] = synthetic_report(vp, settings or load_settings(None), e, speakers,
                                            configured if configured is not None else 0.45)
    return out


def main(argv: list[str] | None = None) -> int:
    from agent.common.config import load_settings

    ap = argparse.ArgumentParser(prog="python -m agent.evals.voice_trust", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--norm", choices=("none", "asnorm"), default="none",
                    help="also measure AS-norm scores (the raw figures are always reported)")
    ap.add_argument("--cohort-k", default="5,10,20", help="top-K cohort sizes for AS-norm, comma separated")
    ap.add_argument("--no-same-channel", action="store_true",
                    help="skip the same-channel impostor trials (agent/evals/same_channel.py)")
    ap.add_argument("--synthetic", action="store_true",
                    help="also score Piper/espeak-ng commands against every model (agent/evals/synthetic.py)")
    a = ap.parse_args(argv)
    try:
        ks = tuple(int(k) for k in a.cohort_k.split(","))
        if not ks or min(ks) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--cohort-k: positive integers separated by commas, not {a.cohort_k!r}")
    s = load_settings(a.config)
    out = measure(s.testdata_dir, s.models_dir, s.identity.min_speech_s, a.norm, ks, s.identity.voice_threshold,
                  same_channel=not a.no_same_channel, synthetic=a.synthetic, settings=s)
    if a.json:
        json.dump(out, sys.stdout)
        print()
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

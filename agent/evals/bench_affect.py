"""Benchmark group "affect": the cost of each emotion/age/gender recogniser and of the fusion.

Text: MiniLM + classifier per transcript of testdata/speech/transcripts.csv. Voice: VAD, speech/music
SVM, gender SVM and prosody per recording of testdata/speech. Face: age/gender per face on the
enrolment photos (the camera stage runs it once per new face track: see vision_age_gender_ms).
"""
from __future__ import annotations

import csv
import time

import cv2

from agent.common.config import Settings
from agent.evals.stats import figure


def bench_affect(settings: Settings, repeat: int = 3) -> dict:
    from agent.common.audio_io import load_audio
    from tools.affect.face_attributes import AgeGenderModel
    from tools.affect.service import Affect
    from tools.vision.faces import FaceFinder
    from tools.vision.images import load_image

    td = settings.testdata_dir
    affect = Affect(settings.affect, settings.identity.min_speech_s)
    with (td / "speech" / "transcripts.csv").open() as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    affect.text(texts[0])  # load
    text_ms, fuse_ms = [], []
    for _ in range(max(repeat, 1)):
        for t in texts:
            t0 = time.perf_counter()
            r = affect.text(t)
            t1 = time.perf_counter()
            affect.fuse(None, r)
            text_ms.append((t1 - t0) * 1e3)
            fuse_ms.append((time.perf_counter() - t1) * 1e3)
    clips = [load_audio(p) for p in sorted((td / "speech").glob("spk*_snt*.wav"))]
    affect.voice(clips[0])  # load
    voice: dict[str, list[float]] = {"total": []}
    for _ in range(max(repeat, 1)):
        for a in clips:
            t0 = time.perf_counter()
            vr = affect.voice(a)
            voice["total"].append((time.perf_counter() - t0) * 1e3)
            for k, v in vr.timings_ms.items():
                voice.setdefault(k, []).append(v)
    model, finder = AgeGenderModel(), FaceFinder(4, 0.5)
    faces = []
    for p in sorted((td / "faces" / "enroll").glob("*/*")):
        rgb = cv2.cvtColor(load_image(p), cv2.COLOR_BGR2RGB)
        faces += [(rgb, f.box) for f in finder.find(rgb)[:1]]
    finder.close()
    model.predict(*faces[0][0:1], [faces[0][1]])  # load
    face_ms = []
    for _ in range(max(repeat, 1)):
        for rgb, box in faces:
            t0 = time.perf_counter()
            model.predict(rgb, [box])
            face_ms.append((time.perf_counter() - t0) * 1e3)
    audio_s = sum(a.size for a in clips) / 16000 / len(clips)
    out = {"affect_text_ms": figure(text_ms, unit="ms", texts=len(texts)),
           "affect_fusion_ms": figure(fuse_ms, unit="ms"),
           "affect_face_age_gender_ms": figure(face_ms, unit="ms", faces=len(faces), per="face")}
    out |= {f"affect_voice_{k}_ms": figure(v, unit="ms", clips=len(clips), mean_clip_s=round(audio_s, 2))
            for k, v in voice.items()}
    return out

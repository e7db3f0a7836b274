"""The ``main.py eval emotion|gender|age`` runs: load cases, run the real recognisers, score."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.evals.affect import (
    age_score,
    emotion_label,
    gender_label,
    labelled_images,
    read_csv_cases,
    read_text_cases,
    score,
)
from tools.common.errors import MMChatError

if TYPE_CHECKING:
    from agent.common.config import Settings


class _MainFace:
    """The largest face of a photo, through the camera stage's own face analyser (no hands)."""

    def __init__(self, settings: "Settings") -> None:
        from tools.vision.face_hands import FaceHandsAnalyser

        self.analyser = FaceHandsAnalyser(settings, video=False, hands=False)

    def __call__(self, path: Path) -> tuple[Any, str | None]:
        from tools.vision.images import load_image

        try:
            faces = self.analyser.analyse(load_image(path)).faces
        except MMChatError as e:
            return None, str(e)
        if not faces:
            return None, "no face"
        return max(faces, key=lambda f: f.box[2] * f.box[3]), None


def emotion_images(settings: "Settings", root: str) -> dict[str, Any]:
    cases = [(str(p), p, [label]) for p, label in labelled_images(root, emotion_label)]
    face = _MainFace(settings)

    def predict(p: Path) -> tuple[str | None, str | None]:
        f, why = face(p)
        return (f.emotion if f else None), why

    return score(cases, predict)


def emotion_text(settings: "Settings", path: str) -> dict[str, Any]:
    from tools.affect.service import Affect

    affect = Affect.shared(settings.affect)
    cases = [(t[:80], t, want) for t, want in read_text_cases(path)]

    def predict(t: str) -> tuple[str | None, str | None]:
        r = affect.text(t)
        return r.emotion, r.reason

    return score(cases, predict)


def gender_images(settings: "Settings", root: str) -> dict[str, Any]:
    cases = [(str(p), p, [label]) for p, label in labelled_images(root, gender_label)]
    face = _MainFace(settings)

    def predict(p: Path) -> tuple[str | None, str | None]:
        f, why = face(p)
        return (f.attributes.gender if f else None), why

    return score(cases, predict)


def gender_audio(settings: "Settings", path: str) -> dict[str, Any]:
    from agent.common.audio_io import load_audio
    from tools.affect.service import Affect

    affect = Affect.shared(settings.affect, settings.identity.min_speech_s)
    cases = []
    for p, g in read_csv_cases(path, "gender"):
        label = gender_label(g)
        if label is None:
            raise MMChatError(f"{path}: unknown gender '{g}' (female or male)")
        cases.append((str(p), p, [label]))

    def predict(p: Path) -> tuple[str | None, str | None]:
        try:
            r = affect.voice(load_audio(p))
        except MMChatError as e:
            return None, str(e)
        return r.gender, r.reason

    return score(cases, predict)


def age_images(settings: "Settings", path: str) -> dict[str, Any]:
    cases = []
    for p, a in read_csv_cases(path, "age"):
        try:
            cases.append((str(p), p, float(a)))
        except ValueError:
            raise MMChatError(f"{path}: age '{a}' is not a number") from None
    face = _MainFace(settings)

    def predict(p: Path) -> tuple[int | None, str | None]:
        f, why = face(p)
        return (f.attributes.age if f else None), why

    return age_score(cases, predict)

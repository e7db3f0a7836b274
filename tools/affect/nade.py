"""Nade (the ``nade`` 0.3.1 wheel, MIT): a fastText model that predicts which of 151 emojis would
follow a social-media message, and LightGBM regressors from those emoji probabilities to eight
Plutchik intensities (anger, anticipation, disgust, fear, joy, sadness, surprise, trust).

Only the wheel's data files are read (``nade`` itself imports pyarrow, which we do not need).
Two readings over the project's six emotions come out of it:

- ``from_emojis``: the emoji probabilities (one-vs-all, so a row need not sum to 1) summed per emotion by a fixed emoji -> emotion table
  (``EMOJI_GROUPS``; emojis of no clear emotion count for none); it catches surprise and worry,
  which word lexicons miss ("whoa", "what if ...").
- ``from_intensities``: joy, sadness, max(anger, disgust), surprise, fear.

Each gets a constant neutral prior before normalising: a sentence with little emotional pull in
either stays neutral.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import re
import threading
import unicodedata
from pathlib import Path

import numpy as np

from tools.common.errors import ErrorCode, MMChatError
from tools.common.once import process_wide
from tools.vision.emotion import EMOTIONS

PLUTCHIK = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
DATA = ("data", "socialmedia_en")
EMOJI_GROUPS = {
    "neutral": "😐 😑 😶 🤔 🧐 💬 🗨️ 💭",
    "happy": "😊 🥰 😍 😁 😄 😃 😀 🙂 ☺️ 🤩 🥳 😆 😂 🤣 😎 🤗 💖 💗 💕 💞 💓 💝 ❤️ 💛 💚 💙 💜 🧡 🤍 "
             "😻 😸 😺 😹 😽 😇 😌 😋 😘 😚 😙 💘 💟 ❣️",
    "sad": "💔 🥺 ☹️ 😞 😢 😭 😔 😿 😪 😥 🙁 😩 😫 🥲",
    "angry": "💢 😡 😠 🤬 😤 👿 😾 🗯️ 🤮 🤢 😒 🙄",
    "surprised": "😮 😲 😯 🤯 😳 🙀",
    "worried": "😟 😰 😨 😧 😦 😓 😬 😖 😣",
}
EMOJI_SPLIT = {"😱": {"surprised": 0.5, "worried": 0.5}}  # a scream: as much shock as fear


def nade_dir() -> Path:
    """The installed wheel's ``data/socialmedia_en`` folder (found without importing ``nade``)."""
    spec = importlib.util.find_spec("nade")
    if spec is None or not spec.submodule_search_locations:
        raise MMChatError("nade is not installed: run scripts/install.sh", ErrorCode.MODEL_MISSING)
    return Path(spec.submodule_search_locations[0]).joinpath(*DATA)


def preprocess(text: str) -> str:
    """Nade's own normalisation: punctuation runs spaced out, whitespace collapsed, lower case."""
    marked = "".join(f"\0{c}\0" if unicodedata.category(c).startswith("P") else c for c in text)
    spaced = re.sub(r"\s*\0([^\0]*)\0\s*", r" \1 ", marked)
    return re.sub(r"\s+", " ", spaced).lower().strip()


class NadeModel:
    """Emoji probabilities and Plutchik intensities of sentences (fastText + LightGBM, CPU)."""

    def __init__(self, root: Path | None = None) -> None:
        try:
            import fasttext
            import lightgbm
        except ImportError as e:
            raise MMChatError(f"{e.name} is not installed: run scripts/install.sh", ErrorCode.MODEL_MISSING) from None
        root = root or nade_dir()
        fasttext.FastText.eprint = lambda *_: None  # its load warning goes to stderr otherwise
        self.ft = fasttext.load_model(str(root / "nade_250k_hp.ftz"))
        self.regressors = [lightgbm.Booster(model_str=gzip.open(root / f"reg_{e}.txt.gz", "rt").read())
                           for e in PLUTCHIK]
        emojis = [json.loads(line) for line in (root / "emoji_frequencies.jsonl").read_text().splitlines() if line]
        by_hash = {int(e["hash"]): e["emoji"] for e in emojis}
        self.hashes = sorted(by_hash)  # feature column j is the j-th smallest label hash (as Nade sorts them)
        self.emoji_to_ours = np.zeros((len(self.hashes), len(EMOTIONS)))
        for j, h in enumerate(self.hashes):
            emoji = by_hash[h]
            for emotion, group in EMOJI_GROUPS.items():
                if emoji in group.split():
                    self.emoji_to_ours[j, EMOTIONS.index(emotion)] = 1.0
            for emotion, share in EMOJI_SPLIT.get(emoji, {}).items():
                self.emoji_to_ours[j, EMOTIONS.index(emotion)] = share
        self._run_lock = threading.Lock()

    @classmethod
    @process_wide
    def shared(cls) -> "NadeModel":
        """The process's one instance (loaded on first use)."""
        return cls()

    def emoji_probs(self, texts: list[str]) -> np.ndarray:
        """(N, 151) emoji probabilities, columns in label-hash order."""
        with self._run_lock:
            labels, probs = self.ft.predict([preprocess(t) for t in texts], k=len(self.hashes))
        col = {h: j for j, h in enumerate(self.hashes)}
        out = np.zeros((len(texts), len(self.hashes)))
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            for lab, p in zip(ls, ps):
                out[i, col[int(lab.replace("__label__", ""))]] = p
        return out

    def intensities(self, emoji: np.ndarray) -> np.ndarray:
        """(N, 8) Plutchik intensities in [0, 1] from the emoji probabilities."""
        return np.stack([np.clip(r.predict(emoji), 0.0, 1.0) for r in self.regressors], axis=1)

    def from_emojis(self, emoji: np.ndarray, neutral_prior: float) -> np.ndarray:
        v = emoji @ self.emoji_to_ours
        v[:, 0] += neutral_prior
        return v / v.sum(axis=1, keepdims=True)

    @staticmethod
    def from_intensities(x: np.ndarray, neutral_prior: float) -> np.ndarray:
        p = dict(zip(PLUTCHIK, x.T))
        v = np.stack([np.full(len(x), neutral_prior), p["joy"], p["sadness"], np.maximum(p["anger"], p["disgust"]),
                      p["surprise"], p["fear"]], axis=1)
        return v / np.clip(v.sum(axis=1, keepdims=True), 1e-9, None)

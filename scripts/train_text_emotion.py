"""Train the text-emotion lexicon classifier (tools/affect/text_emotion_<lexicon>.npz) on MiniLM embeddings.

Labelled words come from a lexicon that ships in a registry package:

- ``empath`` (default; ``empath`` 0.89 sdist, MIT, fetched with ``pip download``; only its
  ``categories.tsv`` is read): joy, cheerfulness, optimism, celebration, contentment, zest,
  affection, fun -> happy; sadness, suffering, disappointment, torment, shame, pain -> sad; anger,
  rage, hate, aggression, irritability, exasperation, disgust -> angry; surprise -> surprised;
  fear, nervousness, horror, timidity -> worried; words of everyday, unemotional categories
  (``NEUTRAL_CATEGORIES``) that are in none of those -> neutral. Classes balanced.
- ``nrc`` (opt-in: the NRC Emotion Lexicon is for research use only; ``nrclex`` 4.1.0 wheel,
  installed --no-deps, only its JSON is read): joy -> happy, sadness -> sad, anger/disgust ->
  angry, surprise -> surprised, fear -> worried; a word with none of these is neutral. A word with
  several emotions is one row per emotion. Unweighted, as first trained.

Multinomial logistic regression (C=1), stored as plain arrays. No sentence of
agent/evals/emotion_text_*.jsonl is used for training; the lexicon choice and the fusion weights
(affect.text_weights) were picked on emotion_text_dev.jsonl only.
Usage: .venv/bin/python scripts/train_text_emotion.py [--lexicon empath|nrc]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.affect.text import LEXICON_MODELS, MiniLMEncoder  # noqa: E402
from tools.vision.emotion import EMOTIONS  # noqa: E402
from tools.vision.mlp import NumpyMLP  # noqa: E402

EMPATH = "empath==0.89"
EMPATH_TO_OURS = {
    "happy": ("joy", "cheerfulness", "optimism", "celebration", "contentment", "zest", "affection", "fun"),
    "sad": ("sadness", "suffering", "disappointment", "torment", "shame", "pain"),
    "angry": ("anger", "rage", "hate", "aggression", "irritability", "exasperation", "disgust"),
    "surprised": ("surprise",),
    "worried": ("fear", "nervousness", "horror", "timidity"),
}
NEUTRAL_CATEGORIES = (
    "office", "furniture", "vehicle", "cooking", "computer", "shopping", "reading", "weather", "phone", "home",
    "eating", "driving", "water", "cleaning", "clothing", "plant", "tool", "programming", "meeting", "traveling",
    "business", "school", "shape_and_size", "communication", "fabric", "technology", "liquid", "car")
NRC_TO_OURS = {"joy": "happy", "sadness": "sad", "anger": "angry", "disgust": "angry", "surprise": "surprised",
               "fear": "worried"}


def empath_categories() -> dict[str, list[str]]:
    """Empath's category -> words table, from the sdist fetched into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                            "-d", tmp, EMPATH], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"pip download {EMPATH} failed:\n{r.stderr[-1000:]}")
        with tarfile.open(next(Path(tmp).glob("empath-*.tar.gz"))) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith("empath/data/categories.tsv"))
            text = tf.extractfile(member).read().decode()  # type: ignore[union-attr]
    rows = (line.split("\t") for line in text.splitlines() if line.strip())
    return {r[0]: [w for w in r[1:] if w] for r in rows}


def empath_rows() -> tuple[list[str], np.ndarray]:
    cats = empath_categories()
    words, labels = [], []
    for emotion, names in EMPATH_TO_OURS.items():
        for w in sorted({w for c in names for w in cats[c]}):
            words.append(w)
            labels.append(EMOTIONS.index(emotion))
    emotional = set(words)
    for w in sorted({w for c in NEUTRAL_CATEGORIES for w in cats[c]} - emotional):
        words.append(w)
        labels.append(EMOTIONS.index("neutral"))
    return words, np.array(labels)


def nrc_rows() -> tuple[list[str], np.ndarray]:
    spec = importlib.util.find_spec("nrclex")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("nrclex is not installed: .venv/bin/python -m pip install --no-deps nrclex==4.1.0")
    lex = json.loads((Path(spec.submodule_search_locations[0]) / "data" / "nrc_en.json").read_text())
    words, labels = [], []
    for word, emotions in sorted(lex.items()):
        for e in sorted({NRC_TO_OURS[e] for e in emotions if e in NRC_TO_OURS}) or ["neutral"]:
            words.append(word)
            labels.append(EMOTIONS.index(e))
    return words, np.array(labels)


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lexicon", choices=sorted(LEXICON_MODELS), default="empath")
    a = ap.parse_args()
    words, y = empath_rows() if a.lexicon == "empath" else nrc_rows()
    vocab = sorted(set(words))
    emb = dict(zip(vocab, MiniLMEncoder().encode(vocab)))
    x = np.stack([emb[w] for w in words])
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced" if a.lexicon == "empath" else None)
    clf.fit(x, y)
    counts = {EMOTIONS[i]: int(n) for i, n in enumerate(np.bincount(y, minlength=len(EMOTIONS)))}
    source = {"empath": f"{EMPATH} categories.tsv (MIT)", "nrc": "nrclex 4.1.0 nrc_en.json (research use only)"}
    model = NumpyMLP((clf.coef_.T.astype(np.float32),), (clf.intercept_.astype(np.float32),), EMOTIONS,
                     {"source": source[a.lexicon], "encoder": "all-MiniLM-L6-v2", "rows": counts,
                      "train_accuracy": round(float(clf.score(x, y)), 4)})
    model.save(LEXICON_MODELS[a.lexicon])
    print(json.dumps({"path": str(LEXICON_MODELS[a.lexicon]), **model.meta}))


if __name__ == "__main__":
    main()

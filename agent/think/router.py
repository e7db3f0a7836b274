"""A semantic router: MiniLM sentence embeddings vs exemplar requests per intent.

It is fast (~10-20 ms) and complements the small LLM: it vetoes tool calls on
utterances that are plainly chit-chat or general knowledge, and supplies the
argument-free tools (read_emotion, describe_scene, query_map) when the LLM
answers in words although the request plainly asks for one. Tools that need
extracted arguments (set_mode, track_object) are left to the LLM.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import yaml

from agent.think.prompts import PROMPTS_DIR
from agent.think.sentence_encoders import Encoder, TorchEncoder, make_encoder

if TYPE_CHECKING:
    from agent.common.config import ControllerSettings

NONE = "none"


@dataclass(frozen=True)
class Intent:
    label: str  # a tool name or "none"
    score: float  # similarity to that intent's exemplars
    scores: dict[str, float]


class IntentScorer(Protocol):
    def classify(self, text: str) -> Intent: ...


class MiniLMRouter:
    """Nearest-exemplar scoring (mean of the top-k cosine similarities per intent)."""

    def __init__(self, exemplars: Path = PROMPTS_DIR / "router_exemplars.yaml", top_k: int = 2,
                 encoder: Encoder | None = None) -> None:
        self._embed: Encoder = encoder or TorchEncoder()
        bank: dict[str, list[str]] = yaml.safe_load(exemplars.read_text())
        self.labels = list(bank)
        self.top_k = top_k
        self.bank = {k: self._embed(v) for k, v in bank.items()}

    def classify(self, text: str) -> Intent:
        q = self._embed([text])[0]
        scores = {}
        for label, mat in self.bank.items():
            sims = np.sort(mat @ q)[::-1][: self.top_k]
            scores[label] = round(float(sims.mean()), 4)
        best = max(scores, key=lambda k: scores[k])
        return Intent(best, scores[best], scores)


def load_router(settings: "ControllerSettings", models_dir: Path) -> MiniLMRouter:
    """The router with the configured encoder (``controller.router_model``)."""
    return MiniLMRouter(encoder=make_encoder(settings.router_model, models_dir))


# Tools whose arguments need no extraction, so the router may choose them.
ROUTER_TOOLS = ("read_emotion", "describe_scene", "query_map")


@dataclass(frozen=True)
class RouterPolicy:
    """When the router overrides the LLM (similarity thresholds, cosine units)."""

    accept: float = 0.6  # router alone calls a tool at this similarity...
    accept_margin: float = 0.2  # ...if it beats "none" by this much
    swap_margin: float = 0.15  # replace the LLM's router-tool by a clearly better one
    support: float = 0.3  # an argument-free tool call needs at least this similarity, else it is vetoed


def _args(tool: str, text: str) -> dict:
    return {"question": text} if tool == "query_map" else {}


def direct_call(intent: Intent | None, text: str, policy: RouterPolicy) -> tuple[str, dict] | None:
    """A confident router decision that needs no LLM pass, as (tool, args)."""
    if intent is None or intent.label not in ROUTER_TOOLS:
        return None
    s = intent.scores
    if s[intent.label] >= policy.accept and s[intent.label] - s[NONE] >= policy.accept_margin:
        return intent.label, _args(intent.label, text)
    return None


def arbitrate(tool: str | None, intent: Intent | None, text: str,
              policy: RouterPolicy) -> tuple[str, dict] | None | Literal[True]:
    """Check the LLM's router-tool choice: True keeps it, None vetoes it, or a (tool, args) swap."""
    if tool not in ROUTER_TOOLS or intent is None:
        return True
    s, best = intent.scores, intent.label
    swap = best in ROUTER_TOOLS and best != tool and s[best] - s[tool] >= policy.swap_margin
    chosen = best if swap else tool
    if s[chosen] < policy.support or (best == NONE and s[NONE] > s[chosen]):
        return None  # out of domain (e.g. a plain statement) or plainly chit-chat
    return (best, _args(best, text)) if swap else True

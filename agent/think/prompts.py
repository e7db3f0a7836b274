"""Prompt templates from prompts/: system prompt, few-shot turns, emotion styles."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

# Emotion labels from any detector -> the family whose style template applies.
EMOTION_FAMILY = {
    "neutral": "neutral", "calm": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "angry": "angry", "anger": "angry", "disgust": "angry", "contempt": "angry",
    "surprise": "surprised", "surprised": "surprised",
    "fear": "worried", "worried": "worried", "anxious": "worried",
}


@dataclass(frozen=True)
class Style:
    family: str
    text: str
    max_sentences: int


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---"):
        _, head, body = text.split("---", 2)
        return yaml.safe_load(head) or {}, body.strip()
    return {}, text.strip()


class PromptBook:
    """Loads every template once; the system prompt and examples never change at run time."""

    def __init__(self, root: Path = PROMPTS_DIR) -> None:
        self.system = (root / "system.md").read_text().strip()
        self.tools_block = (root / "tools_block.md").read_text().strip()
        self.reply_system = (root / "reply_system.md").read_text().strip()
        self.examples: list[dict[str, str]] = yaml.safe_load((root / "examples.yaml").read_text())
        self.tool_result = (root / "tool_result.md").read_text().strip()
        self.styles: dict[str, Style] = {}
        for f in sorted((root / "emotion").glob("*.md")):
            meta, body = _front_matter(f.read_text())
            self.styles[f.stem] = Style(f.stem, body, int(meta.get("max_sentences", 2)))

    def system_prompt(self, tools: list) -> str:
        """System prompt with the tools rendered in Qwen's own tool-calling format."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        specs = "\n".join(json.dumps(convert_to_openai_tool(t), ensure_ascii=False) for t in tools)
        return f"{self.system}\n\n{self.tools_block.replace('{tools}', specs)}"

    def reply_prompt(self, style: Style) -> str:
        """System prompt for answering (no tools): the fixed persona, then the emotion style."""
        return self.reply_system.replace("{style}", style.text)

    @staticmethod
    def call_text(name: str, args: dict) -> str:
        """How an assistant tool call is written in the transcript: bare JSON, as
        Qwen2.5-Coder writes it itself (tagged examples made it stop calling tools)."""
        return json.dumps({"name": name, "arguments": args})

    def style(self, emotion: str | None) -> Style:
        family = EMOTION_FAMILY.get((emotion or "neutral").strip().lower(), "neutral")
        return self.styles[family]

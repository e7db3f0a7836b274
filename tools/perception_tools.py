"""The tools the LLM calls, as LangChain tools with typed arguments."""
from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from tools.base import MODES, Mode, ToolContext, ToolResult


class NoArgs(BaseModel):
    """This tool takes no arguments."""


class SetModeArgs(BaseModel):
    mode: Mode = Field(description="one of " + ", ".join(MODES))


class TrackArgs(BaseModel):
    label: str = Field(min_length=1, max_length=60, description="name of the object to follow, e.g. cup")


class MapArgs(BaseModel):
    question: str = Field(min_length=1, max_length=500, description="the user's question about the map")


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    """The five tools bound to one context, in a fixed order (keeps the prompt cache warm)."""

    def read_emotion() -> str:
        if ctx.perception is None and not ctx.affect:
            return ToolResult.unavailable("Reading facial emotion").to_json()
        face = ctx.perception.emotion() if ctx.perception is not None else None
        return with_fused(face, ctx.affect).to_json()

    def set_mode(mode: str) -> str:
        previous = ctx.set_mode(mode)
        same = previous == mode
        summary = f"Already in {mode} mode." if same else f"Switched from {previous} to {mode} mode."
        return ToolResult(ok=True, summary=summary, data={"mode": mode, "previous": previous}).to_json()

    def describe_scene() -> str:
        if ctx.perception is None:
            return ToolResult.unavailable("Seeing through the camera").to_json()
        return ctx.perception.scene().to_json()

    def track_object(label: str) -> str:
        if ctx.perception is None:
            return ToolResult.unavailable(f"Tracking the {label}").to_json()
        return ctx.perception.track(label).to_json()

    def query_map(question: str) -> str:
        if ctx.map_query is None:
            return ToolResult.unavailable("The map").to_json()
        return ctx.map_query.answer(question).to_json()

    specs = [
        (read_emotion, "Look at the user's face through the camera and read their facial expression or mood "
                       "right now. Use when the user asks how they look, seem or feel to you.", NoArgs),
        (set_mode, "Switch the assistant's mode. conversation: normal talk; tracking: follow objects; mapping: "
                   "build a map of the surroundings while moving; privacy: stop using camera and microphone; "
                   "sleep: stop listening until the wake word.", SetModeArgs),
        (describe_scene, "Look through the camera and report what is visible right now: people, objects and "
                         "where they are. Use for any question about what you can see or what is in front of "
                         "the user.", NoArgs),
        (track_object, "Find one object in the camera view and keep following it. Use when the user asks you "
                       "to track, follow, watch or keep an eye on something.", TrackArgs),
        (query_map, "Answer from the map built while moving: where a thing was seen, where it is relative to "
                    "the user, how far we have moved, how big the map is, when something was last seen.",
         MapArgs),
    ]
    return [StructuredTool.from_function(fn, name=fn.__name__, description=d, args_schema=s)
            for fn, d, s in specs]


def with_fused(face: ToolResult | None, fused: dict | None) -> ToolResult:
    """read_emotion's answer: the face, plus this turn's fusion of face and words and which of them agreed."""
    if not fused or not fused.get("emotion"):
        return face or ToolResult(ok=False, summary="I can't tell how you feel right now.", data={"status": "no-reading"})
    names = {"face": "face", "text": "words", "voice": "voice"}
    agreed = [names.get(m, m) for m in fused.get("agreed", [])]
    used = [names.get(m, m) for m in fused.get("modalities", [])]
    words = (fused.get("text") or {}).get("emotion")
    if len(used) > 1:
        how = "your face and your words agree" if len(agreed) == len(used) else \
            f"going by your {' and '.join(agreed)}" + (f"; your words sound {words}" if "words" not in agreed and words else "")
    else:
        how = f"from your {used[0]} only"
    summary = f"{face.summary + ' ' if face is not None and face.ok else ''}Overall you seem {fused['emotion']} ({how})."
    data = {**(face.data if face is not None else {}), "fused": fused}
    return ToolResult(ok=True, summary=summary, data=data)

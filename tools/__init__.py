"""Perception tools the LLM calls (names are a stable contract, see CLI.md)."""
from tools.base import MODES, ToolContext, ToolResult
from tools.perception_tools import build_tools

TOOL_NAMES = ("read_emotion", "set_mode", "describe_scene", "track_object", "query_map")

__all__ = ["MODES", "TOOL_NAMES", "ToolContext", "ToolResult", "build_tools"]

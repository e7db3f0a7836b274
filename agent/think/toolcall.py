"""Lenient parsing of the JSON tool call a small model writes in its text.

Qwen2.5-Coder answers tool requests with bare ``{"name": ..., "arguments": ...}``
JSON (sometimes fenced, wrapped in ``<tool_call>`` tags, with single quotes or
doubled braces). Parsing that text directly routes far better than stock
function-calling formats. Arguments are checked against the tool's schema;
keys the schema does not know are dropped.
"""
from __future__ import annotations

import ast
import difflib
import json
import re
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

_NAME_KEYS = ("name", "tool", "function", "tool_name")
_ARG_KEYS = ("arguments", "args", "parameters", "input", "tool_input")

from tools.common.errors import ErrorCode, MMChatError


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}


class ToolCallError(MMChatError):
    """The text looks like a tool call but names no known tool or bad arguments."""

    code = ErrorCode.TOOL_CALL


def looks_like_call(text: str) -> bool:
    """True when the model's output starts like a JSON/tagged tool call."""
    t = text.lstrip()
    return t.startswith(("{", "```", "<tool_call>", "[{")) or bool(re.match(r"^\w+\s*\(\s*\{", t))


def _objects(text: str) -> Iterator[dict[str, Any]]:
    """Yield every JSON-ish object found in the text, outermost first."""
    t = text.replace("<tool_call>", " ").replace("</tool_call>", " ")
    t = re.sub(r"```(?:json)?", " ", t)
    yield from _scan(t)
    if "{{" in t:  # the 1.5B template's doubled braces, copied by the model
        yield from _scan(t.replace("{{", "{").replace("}}", "}"))


def _scan(t: str) -> Iterator[dict[str, Any]]:
    dec = json.JSONDecoder()
    i = t.find("{")
    while i >= 0:
        try:
            obj, end = dec.raw_decode(t, i)
        except json.JSONDecodeError:
            obj, end = _literal(t, i)
        if isinstance(obj, dict):
            yield obj
            i = t.find("{", end)
        else:
            i = t.find("{", i + 1)


def _literal(t: str, i: int) -> tuple[Any, int]:
    """Python-literal fallback for single quotes / True / None; (None, i) if no luck."""
    depth = 0
    for j in range(i, len(t)):
        depth += {"{": 1, "}": -1}.get(t[j], 0)
        if depth == 0:
            chunk = t[i:j + 1]
            for conv in (lambda s: ast.literal_eval(s),
                         lambda s: ast.literal_eval(s.replace("true", "True").replace("false", "False")
                                                    .replace("null", "None"))):
                try:
                    return conv(chunk), j + 1
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    pass
            return None, i
    return None, i


def _name_args(obj: dict, tools: dict[str, type[BaseModel]]) -> tuple[str, Any] | None:
    if "function" in obj and isinstance(obj["function"], dict):  # OpenAI style nesting
        obj = obj["function"]
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    args: Any = next((obj[k] for k in _ARG_KEYS if k in obj), {})
    if name is None and len(obj) == 1:  # {"set_mode": {"mode": "privacy"}}
        (k, v), = obj.items()
        if k in tools:
            name, args = k, v
    if name is None:
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            args = {}
    return name.strip(), args if isinstance(args, dict) else {}


def _clean_args(name: str, args: dict, schema: type[BaseModel]) -> dict[str, Any]:
    fields = schema.model_fields
    kept = {k: v for k, v in args.items() if k in fields and not isinstance(v, (dict, list))}
    for k, f in fields.items():  # snap near-misses onto an enum ("Privacy mode" -> privacy)
        choices = getattr(f.annotation, "__args__", None)
        if k in kept and choices and all(isinstance(c, str) for c in choices):
            v = str(kept[k]).strip().lower().removesuffix(" mode")
            match = difflib.get_close_matches(v, choices, n=1, cutoff=0.75)
            kept[k] = match[0] if match else v
        elif k in kept and isinstance(kept[k], str):
            kept[k] = kept[k].strip()
    try:
        return schema(**kept).model_dump()
    except ValidationError as e:
        raise ToolCallError(f"bad arguments for {name}: {e.errors()[0]['msg']}") from None


def parse_tool_call(text: str, tools: dict[str, type[BaseModel]]) -> ToolCall | None:
    """Return the first valid tool call in ``text``; None when it holds none.

    Raises ToolCallError when the text clearly tries a call that cannot be
    honoured (unknown tool name, arguments that fail the schema).
    """
    problem: str | None = None
    for obj in _objects(text):
        found = _name_args(obj, tools)
        if found is None:
            continue
        name, args = found
        if name not in tools:
            close = difflib.get_close_matches(name, list(tools), n=1, cutoff=0.8)
            if not close:
                problem = problem or f"unknown tool {name[:60]!r}"  # repr: the model's text stays one line
                continue
            name = close[0]
        try:
            return ToolCall(name, _clean_args(name, args, tools[name]))
        except ToolCallError as e:
            problem = problem or str(e)
    if problem:
        raise ToolCallError(problem)
    return None

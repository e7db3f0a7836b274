"""Tool-routing evaluation: does the controller pick the right tool and arguments?

Case file: JSON lines ``{"text": ..., "tool": NAME or null, "args": {...}}``
(``args`` optional, compared case-insensitively after trimming punctuation
and leading articles).
"""
from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

from agent.evals.stats import figure
from agent.think.controller import Controller
from agent.think.toolcall import ToolCallError
from tools.common.errors import ErrorCode, MMChatError

DEFAULT_CASES = Path(__file__).with_name("tool_cases.jsonl")
_ARTICLES = re.compile(r"^(the|a|an|my|that|this|our|your)\s+")


def load_cases(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise MMChatError(f"cases file not found: {p}", ErrorCode.BAD_INPUT)
    cases = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            c = json.loads(line)
        except json.JSONDecodeError as e:
            raise MMChatError(f"{p.name}:{i}: not valid JSON ({e.msg})", ErrorCode.BAD_INPUT) from None
        if not isinstance(c, dict) or not isinstance(c.get("text"), str) or "tool" not in c:
            raise MMChatError(f"{p.name}:{i}: need an object with 'text' and 'tool'", ErrorCode.BAD_INPUT)
        if c.get("args") is not None and not isinstance(c["args"], dict):
            raise MMChatError(f"{p.name}:{i}: 'args' must be an object", ErrorCode.BAD_INPUT)
        cases.append(c)
    if not cases:
        raise MMChatError(f"no cases in {p}", ErrorCode.BAD_INPUT)
    return cases


def norm_value(v: object) -> str:
    s = re.sub(r"[^\w\s]", " ", str(v).lower())
    s = " ".join(s.split())
    return _ARTICLES.sub("", s)


def args_match(expected: dict, got: dict) -> bool:
    return all(norm_value(v) == norm_value(got.get(k, "")) for k, v in expected.items())


def evaluate(controller: Controller, cases: list[dict]) -> dict:
    """Route every case (no tool is run) and score tool choice and arguments."""
    per_tool: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "correct": 0})
    errors, tool_ok, args_n, args_ok, latencies = [], 0, 0, 0, []
    for c in cases:
        t0 = time.perf_counter()
        try:
            call = controller.route(c["text"])
            problem: str | None = None
            got_tool, got_args = (call.name, call.args) if call else (None, {})
        except (ToolCallError, MMChatError) as e:
            got_tool, got_args, problem = "(invalid)", {}, str(e)
        latencies.append(time.perf_counter() - t0)
        controller.history.clear()  # every case is a fresh conversation
        want = c["tool"]
        key = want or "none"
        per_tool[key]["n"] += 1
        right = got_tool == want
        tool_ok += right
        per_tool[key]["correct"] += right
        exp_args = c.get("args") or {}
        a_right = True
        if exp_args:
            args_n += 1
            a_right = right and args_match(exp_args, got_args)
            args_ok += a_right
        if not (right and a_right):
            errors.append({"text": c["text"], "expected": {"tool": want, "args": exp_args},
                           "got": {"tool": got_tool, "args": got_args}, **({"error": problem} if problem else {})})
    n = len(cases)
    return {
        "tool_accuracy": round(tool_ok / n, 4),
        "args_accuracy": round(args_ok / args_n, 4) if args_n else None,
        "n": n, "n_with_args": args_n,
        "per_tool": {k: {**v, "accuracy": round(v["correct"] / v["n"], 4)} for k, v in sorted(per_tool.items())},
        "median_route_s": round(sorted(latencies)[n // 2], 3),
        "route_s": figure(latencies),
        "errors": errors,
    }

"""The layer rule, read from the imports of every module (no model, no test data).

One utterance runs listen -> identity -> think -> speak, the session drives them, the apps sit on top:

    app, evals -> session -> speak -> think -> identity -> listen -> agent.common -> tools.common
    think, identity, session, app, evals -> tools -> tools.common

A module may import its own layer and any layer below it, never one above; tools/ never imports
agent/; no two modules import each other, directly or round a loop (lazy imports count too).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["tools.common", "agent.common", "agent.listen", "agent.identity", "agent.think", "agent.speak",
         "agent.session", "agent.evals", "agent.app"]
# tools/ (the perception tools) sit beside the stages: below think, identity and the session
TOOLS_USERS = {"agent.identity", "agent.think", "agent.session", "agent.evals", "agent.app"}
SAME_RANK = {("agent.evals", "agent.app"), ("agent.app", "agent.evals")}  # apps run measurements and back


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "tools":
        return "tools.common" if parts[1:2] == ["common"] else "tools"
    return ".".join(parts[:2]) if len(parts) > 1 else "agent"


def modules() -> dict[str, Path]:
    out = {}
    for top in ("agent", "tools"):
        for p in (ROOT / top).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a file imports (``from pkg import mod`` resolves to the module when it is one)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] in ("agent", "tools")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in ("agent", "tools"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known.keys()
            out |= subs or {node.module}
    return out


def allowed(src: str, dst: str) -> bool:
    a, b = layer(src), layer(dst)
    if a == b or (a, b) in SAME_RANK or b == "tools.common":
        return True
    if b == "tools":
        return a in TOOLS_USERS
    if a in ("tools", "agent") or b == "agent":
        return a == "agent" and b != "agent.app"  # agent/__init__ only; nothing imports the package root
    return ORDER.index(b) < ORDER.index(a)


GRAPH = {name: imports(path, modules()) for name, path in modules().items()}


def test_every_module_has_a_layer() -> None:
    assert {layer(m) for m in GRAPH} <= set(ORDER) | {"tools", "agent"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_goes_up_a_layer(module: str) -> None:
    up = sorted(d for d in GRAPH[module] if not allowed(module, d))
    assert not up, f"{module} ({layer(module)}) imports a higher layer: {up}"


def test_a_rule_breach_is_caught() -> None:
    assert not allowed("tools.vision.who", "agent.identity.profiles")
    assert not allowed("agent.listen.frontend", "agent.speak.playback")
    assert not allowed("agent.session.runner", "agent.app.demo")
    assert allowed("agent.speak.reply", "agent.think.controller")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    # a package's __init__ re-exporting its modules is not a cycle of code
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]

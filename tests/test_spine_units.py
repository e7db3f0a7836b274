"""Plumbing of the spine without models: config, tool-call parsing, sentences, controller flow."""
from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from agent.common.config import ControllerSettings, load_settings, replaced
from agent.common.phrases import FALLBACK_GARBLED
from agent.think.controller import Controller
from agent.think.prompts import PromptBook
from agent.think.sentences import SentenceSplitter
from agent.think.toolcall import ToolCallError, parse_tool_call
from tests.conftest import ROOT
from tools import ToolContext, build_tools
from tools.common.errors import ConfigError, ErrorCode, MMChatError

SCHEMAS = {t.name: t.args_schema for t in build_tools(ToolContext())}


# -- config -------------------------------------------------------------------------
def test_default_config_loads(settings):
    assert settings.llm.backend == "embedded" and settings.asr.model == "tiny.en"


@pytest.mark.parametrize("text, key", [
    ("llm:\n  backend: chatgpt\n", "llm.backend"),
    ("llm:\n  n_ctx: lots\n", "llm.n_ctx"),
    ("asr:\n  modle: base\n", "asr.modle"),
    ("colour: blue\n", "colour"),
    ("session:\n  allow_still_face: true\n", "session.allow_still_face"),  # the flat keys moved to sections
    ("session:\n  echo:\n    gain: loud\n", "session.echo.gain"),
    ("session:\n  face: 3\n", "session.face"),
])
def test_config_errors_name_the_key(tmp_path, text, key):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_session_overrides_merge_into_its_sections_key_by_key():
    base = load_settings(ROOT / "config.yaml")
    s = load_settings(ROOT / "config.yaml", overrides={"session": {"face": {"allow_still": True}, "camera": 2}})
    assert s.session.face.allow_still and s.session.camera == 2 and not base.session.face.allow_still
    assert s.session.face.fallback == base.session.face.fallback and s.session.echo == base.session.echo
    r = replaced(base, "session.face", allow_still=True)
    assert r.session.face == s.session.face and r.session.turns == base.session.turns
    assert not base.session.face.allow_still  # a copy: the original is left alone
    with pytest.raises(ConfigError, match="session.face.alow_still: unknown key"):
        load_settings(ROOT / "config.yaml", overrides={"session": {"face": {"alow_still": True}}})


def test_malformed_yaml_is_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("llm: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(p)


def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys):
    from agent.app.cli import main

    p = tmp_path / "c.yaml"
    p.write_text("tts:\n  length_scale: -3\n")
    assert main(["ask", "hello", "--config", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tts.length_scale" in err


# -- tool-call parsing --------------------------------------------------------------------
@pytest.mark.parametrize("text, name, args", [
    ('{"name": "describe_scene", "arguments": {}}', "describe_scene", {}),
    ('{{"name": "set_mode", "arguments": {"mode": "Privacy"}}}', "set_mode", {"mode": "privacy"}),
    ('<tool_call>\n{"name": "track_object", "arguments": {"label": " cup ", "x": 1}}\n</tool_call>',
     "track_object", {"label": "cup"}),
    ("{'name': 'query_map', 'arguments': {'question': 'where'}}", "query_map", {"question": "where"}),
    ('```json\n{"name": "read_emotion", "arguments": {"properties": {}, "type": "object"}}\n```',
     "read_emotion", {}),
    ('{"function": {"name": "set_mode", "arguments": "{\\"mode\\": \\"sleep mode\\"}"}}', "set_mode",
     {"mode": "sleep"}),
])
def test_parse_lenient_tool_calls(text, name, args):
    call = parse_tool_call(text, SCHEMAS)
    assert call is not None and call.name == name and call.args == args


def test_parse_rejects_unknown_tool_and_bad_args():
    with pytest.raises(ToolCallError, match="unknown tool"):
        parse_tool_call('{"name": "calculate", "arguments": {"x": 2}}', SCHEMAS)
    with pytest.raises(ToolCallError, match="set_mode"):
        parse_tool_call('{"name": "set_mode", "arguments": {"mode": "dancing"}}', SCHEMAS)
    assert parse_tool_call("The capital of France is Paris.", SCHEMAS) is None


# -- sentences ------------------------------------------------------------------------------
def test_sentence_splitter_streams_complete_sentences():
    s = SentenceSplitter()
    got = []
    for piece in ["Hello the", "re. Dr. Smith is", " here! It costs 3.5 euros", ". And"]:
        got += s.feed(piece)
    got += s.flush()
    assert got == ["Hello there.", "Dr. Smith is here!", "It costs 3.5 euros.", "And"]


def test_first_clause_is_spoken_early_and_not_counted_as_a_sentence():
    s = SentenceSplitter(first_words=5)
    got = []
    for piece in ["Sure, I can", " see four people on the left,", " a ball in", " the centre, and a cup. Want more", "?"]:
        got += s.feed(piece)
    got += s.flush()
    # "Sure," is too short to stand alone; only the first piece may end at a clause
    assert got == ["Sure, I can see four people on the left,", "a ball in the centre, and a cup.", "Want more?"]
    assert s.early == 1  # only the first piece was cut early; a long run-on is cut (and counted) as before
    long = SentenceSplitter(max_words=6)
    pieces = long.feed("one two three four five six, seven eight nine ten eleven twelve, thirteen ")
    assert pieces == ["one two three four five six,", "seven eight nine ten eleven twelve,"] and long.early == 1


# -- controller flow with a scripted model (plumbing only; real-model tests elsewhere) ----------
def _controller(*replies: str, ctx: ToolContext | None = None) -> Controller:
    llm = GenericFakeChatModel(messages=iter(replies))
    return Controller(llm, build_tools(ctx or ToolContext()), PromptBook(), ControllerSettings())


def test_controller_runs_tool_and_speaks_its_summary():
    ctx = ToolContext()
    spoken: list[str] = []
    r = _controller('{"name": "set_mode", "arguments": {"mode": "privacy"}}', ctx=ctx).respond(
        "Go private please.", on_sentence=spoken.append)
    assert [c.as_dict() for c in r.tool_calls] == [{"name": "set_mode", "args": {"mode": "privacy"}}]
    assert ctx.mode == "privacy" and spoken == [r.reply] and "privacy" in r.reply


def test_unavailable_perception_is_said_honestly():
    r = _controller('{"name": "describe_scene", "arguments": {}}').respond("What do you see?")
    assert r.tool_calls[0].name == "describe_scene" and "not available" in r.reply


def test_garbage_and_unknown_tools_get_a_spoken_fallback():
    r = _controller('{"foo": 1}').respond("Hello")
    assert r.reply == FALLBACK_GARBLED and r.error
    r = _controller('{"name": "launch_rocket", "arguments": {}}').respond("Hello")
    assert "couldn't" in r.reply and "launch_rocket" in r.error and not r.tool_calls


def test_reply_is_capped_to_style_length():
    r = _controller("One. Two. Three. Four. Five.").respond("Count please.")
    assert r.reply == "One. Two."  # neutral style: at most two sentences


def test_input_checks():
    c = _controller("unused")
    with pytest.raises(MMChatError) as e:
        c.respond("x" * 5000)
    assert e.value.code == ErrorCode.INPUT_TOO_LONG
    with pytest.raises(MMChatError):
        c.respond("   ")


def test_tool_results_are_json_with_summary():
    tools = {t.name: t for t in build_tools(ToolContext())}
    out = json.loads(tools["track_object"].invoke({"label": "cup"}))
    assert out["ok"] is False and "cup" in out["summary"]


# -- router arbitration (scores given; the MiniLM model is exercised by the routing eval) ------------
def test_router_arbitration_rules():
    from agent.think.router import Intent, RouterPolicy, arbitrate, direct_call

    p = RouterPolicy()

    def intent(**scores):
        best = max(scores, key=scores.get)
        return Intent(best, scores[best], scores)

    base = dict(read_emotion=0.1, describe_scene=0.1, query_map=0.1, none=0.1)
    sure = intent(**{**base, "describe_scene": 0.75, "none": 0.3})
    assert direct_call(sure, "what is there", p) == ("describe_scene", {})
    assert direct_call(intent(**{**base, "describe_scene": 0.5}), "x", p) is None
    # the LLM's call kept, swapped for a clearly better one, vetoed as chit-chat or out of domain
    assert arbitrate("describe_scene", intent(**{**base, "describe_scene": 0.45}), "x", p) is True
    assert arbitrate("query_map", intent(**{**base, "query_map": 0.35, "describe_scene": 0.55}), "x", p) == \
        ("describe_scene", {})
    assert arbitrate("query_map", intent(**{**base, "query_map": 0.4, "none": 0.5}), "x", p) is None
    assert arbitrate("query_map", intent(**{**base, "query_map": 0.2, "describe_scene": 0.25}), "x", p) is None
    assert arbitrate("set_mode", intent(**{**base, "none": 0.9}), "x", p) is True  # not the router's call


def test_sentence_cap_holds_for_run_on_replies():
    """A reply with no sentence end is still capped (long sentences are cut at clauses and counted)."""
    run_on = ", ".join(f"item number {i} is here" for i in range(40))
    spoken: list[str] = []
    r = _controller(run_on).respond("List everything.", on_sentence=spoken.append, max_sentences=2)
    assert 2 <= len(spoken) <= 3 and len(r.reply) < len(run_on) / 3, spoken


def test_process_wide_builds_once_per_arguments_even_when_threads_race():
    """Eight threads asking at once get one instance (built once); defaults given or not are one key."""
    import threading
    import time

    from tools.common.once import process_wide

    built: list[tuple] = []

    @process_wide
    def load(name: str, size: int = 1) -> object:
        built.append((name, size))
        time.sleep(0.05)  # a slow model load: the others arrive meanwhile
        return object()

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(load("a"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(g) for g in got}) == 1 and built == [("a", 1)]
    assert load("a", 1) is load("a", size=1) is got[0] and load("a", 2) is not got[0]
    assert built == [("a", 1), ("a", 2)]

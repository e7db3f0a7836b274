"""Fuzzed inputs (hypothesis) for the parsers every input path goes through: the model's tool-call
text, config.yaml, audio files and images. Each input either parses or raises the project's
typed, one-line error; nothing else escapes. Default runs are small; ``-m slow`` runs 20x more."""
from __future__ import annotations

import io
import json
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.think.toolcall import ToolCallError, parse_tool_call
from tools.common.errors import MMChatError

N = 150  # examples per default test
SLOW = 20
QUICK = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = settings(max_examples=N * SLOW, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tools():
    from tools import ToolContext
    from tools.perception_tools import build_tools

    return {t.name: t.args_schema for t in build_tools(ToolContext())}


TOOLS = _tools()
NAMES = sorted(TOOLS)

# -- tool calls ---------------------------------------------------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
arguments = st.dictionaries(st.sampled_from(["mode", "label", "question", "x"]) | st.text(max_size=6), json_values,
                            max_size=4) | json_values


@st.composite
def call_objects(draw) -> dict:
    obj = {draw(st.sampled_from(["name", "tool", "function", "tool_name"])):
           draw(st.sampled_from(NAMES) | st.text(max_size=20))}
    if draw(st.booleans()):
        obj[draw(st.sampled_from(["arguments", "args", "parameters", "input"]))] = draw(arguments)
    return obj


@st.composite
def call_texts(draw) -> str:
    obj = draw(call_objects())
    body = draw(st.sampled_from([json.dumps, repr, lambda o: json.dumps(o).replace("{", "{{").replace("}", "}}")]))(obj)
    wrap = draw(st.sampled_from(["{}", "```json\n{}\n```", "<tool_call>{}</tool_call>", "[{}]", "Sure! {} done"]))
    text = wrap.replace("{}", body)
    cut = draw(st.integers(0, len(text)))  # the model may stop mid-call
    return text if draw(st.booleans()) else text[:cut]


def _check_call(text: str) -> None:
    try:
        call = parse_tool_call(text, TOOLS)
    except ToolCallError as e:
        assert str(e) and "\n" not in str(e)
        return
    if call is not None:  # a returned call is always a known tool with schema-valid arguments
        assert call.name in TOOLS
        TOOLS[call.name](**call.args)


@QUICK
@given(st.one_of(call_texts(), st.text(max_size=300)))
def test_tool_call_parser_never_crashes(text):
    _check_call(text)


@pytest.mark.slow
@BIG
@given(st.one_of(call_texts(), st.text(max_size=2000)))
def test_tool_call_parser_never_crashes_big(text):
    _check_call(text)


@QUICK
@given(st.sampled_from(["conversation", "tracking", "mapping", "privacy", "sleep"]), st.text(
    alphabet=st.characters(blacklist_characters="{}[]'\"`<>"), max_size=40))
def test_a_valid_call_in_chatter_is_found(mode, chatter):
    call = parse_tool_call(f'{chatter} {{"name": "set_mode", "arguments": {{"mode": "{mode}"}}}} {chatter}', TOOLS)
    assert call is not None and call.as_dict() == {"name": "set_mode", "args": {"mode": mode}}


# -- config.yaml -------------------------------------------------------------------------------
def _sections():
    from agent.common.config import Settings

    return {name: list(f.annotation.model_fields) for name, f in Settings.model_fields.items()
            if hasattr(f.annotation, "model_fields")}


SECTIONS = _sections()
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
config_docs = st.dictionaries(
    st.sampled_from(sorted(SECTIONS)) | st.text(max_size=8),
    st.dictionaries(st.sampled_from(sorted({k for ks in SECTIONS.values() for k in ks})) | st.text(max_size=8),
                    scalars | st.lists(scalars, max_size=3), max_size=5) | scalars,
    max_size=4)


def _check_config(tmp: Path, text: str) -> None:
    from agent.common.config import ConfigError, Settings, load_settings

    p = tmp / "config.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        assert isinstance(load_settings(p), Settings)
    except ConfigError as e:
        assert str(e).startswith(str(p)) and "\n" not in str(e)


@QUICK
@given(st.one_of(config_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=200)))
def test_config_loader_gives_settings_or_a_one_line_error(tmp_path_factory, text):
    _check_config(tmp_path_factory.mktemp("cfg"), text)


@pytest.mark.slow
@BIG
@given(st.one_of(config_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=2000)))
def test_config_loader_big(tmp_path_factory, text):
    _check_config(tmp_path_factory.mktemp("cfg"), text)


# -- audio and images ------------------------------------------------------------------------------
def _wav(n: int = 1600) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(n) / 5) * 8000).astype("<i2").tobytes())
    return buf.getvalue()


WAV = _wav()
# (offset, struct format) of the RIFF/WAVE header fields: sizes, format tag, channels, rate, byte rate,
# block align, bits per sample, data size
FIELDS = [(4, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"), (34, "<H"), (40, "<I")]


@st.composite
def mutated_wavs(draw) -> bytes:
    data = bytearray(WAV)
    for off, fmt in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4)):
        bits = 8 * struct.calcsize(fmt)
        struct.pack_into(fmt, data, off, draw(st.integers(0, 2**bits - 1)))
    return bytes(data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


def _check_audio(tmp: Path, data: bytes) -> None:
    from agent.common.audio_io import load_audio

    p = tmp / "x.wav"
    p.write_bytes(data)
    try:
        a = load_audio(p)
    except MMChatError as e:
        assert "\n" not in str(e)
        return
    assert a.dtype == np.float32 and a.ndim == 1 and np.isfinite(a).all()


@QUICK
@given(st.one_of(mutated_wavs(), st.binary(max_size=2000)))
def test_audio_loader_gives_audio_or_a_typed_error(tmp_path_factory, data):
    _check_audio(tmp_path_factory.mktemp("wav"), data)


@pytest.mark.slow
@BIG
@given(st.one_of(mutated_wavs(), st.binary(max_size=20000)))
def test_audio_loader_big(tmp_path_factory, data):
    _check_audio(tmp_path_factory.mktemp("wav"), data)


def _jpeg() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((32, 48, 3), 128, np.uint8))
    return buf.tobytes()


JPEG = _jpeg()


@QUICK
@given(st.one_of(st.binary(max_size=1000), st.tuples(st.integers(0, len(JPEG) - 1), st.binary(min_size=1, max_size=8))
                 .map(lambda t: JPEG[:t[0]] + t[1] + JPEG[t[0] + len(t[1]):])))
def test_image_loader_gives_an_image_or_a_typed_error(tmp_path_factory, data):
    from tools.vision.images import load_image

    p = tmp_path_factory.mktemp("img") / "x.jpg"
    p.write_bytes(data)
    try:
        img = load_image(p)
    except MMChatError as e:
        assert "\n" not in str(e)
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3

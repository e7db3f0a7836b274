"""LLM backends: openai against a real local OpenAI-compatible server; ollama up to the wire."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agent.common.config import load_settings
from agent.think.llm import make_chat_model
from tests.conftest import ROOT
from tests.fakes import free_port as _free_port
from tools.common.errors import BackendUnavailableError


def _settings(**llm):
    return load_settings(ROOT / "config.yaml", {"llm": llm, "controller": {"warm_up": False}})


def test_ollama_absent_gives_hint():
    s = _settings(backend="ollama", model="qwen2.5-coder:1.5b", url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(BackendUnavailableError, match="start it with: ollama serve"):
        make_chat_model(s.llm, s.models_dir)


def test_ollama_cli_error_is_one_line(tmp_path, capsys):
    from agent.app.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"llm:\n  backend: ollama\n  url: http://127.0.0.1:{_free_port()}\n")
    assert main(["ask", "hello", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "ollama serve" in err and "\n" not in err and "Traceback" not in err


class _OllamaWire(BaseHTTPRequestHandler):
    """Records what the client sends; answers in Ollama's NDJSON chat format."""

    requests: list = []

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        body = json.dumps({"version": "0.0.0-wire"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.requests.append((self.path, json.loads(self.rfile.read(n))))
        chunks = [{"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant",
                   "content": '{"name": "set_mode", "arguments": {"mode": "sleep"}}'}, "done": False},
                  {"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant",
                   "content": ""}, "done": True, "done_reason": "stop"}]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for c in chunks:
            self.wfile.write((json.dumps(c) + "\n").encode())


def test_ollama_request_on_the_wire():
    """No Ollama server is installable here: check the request our config produces."""
    from agent.common.config import ControllerSettings
    from agent.think.controller import Controller
    from agent.think.prompts import PromptBook
    from tools import ToolContext, build_tools

    server = HTTPServer(("127.0.0.1", 0), _OllamaWire)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = _settings(backend="ollama", model="qwen2.5-coder:1.5b", url=f"http://127.0.0.1:{server.server_port}",
                      max_tokens=99)
        llm = make_chat_model(s.llm, s.models_dir)
        ctx = ToolContext()
        ctl = Controller(llm, build_tools(ctx), PromptBook(), ControllerSettings(router=False))
        r = ctl.respond("Time to sleep.")
    finally:
        server.shutdown()
    path, body = _OllamaWire.requests[-1]
    assert path == "/api/chat" and body["model"] == "qwen2.5-coder:1.5b" and body["stream"] is True
    assert body["options"]["num_predict"] == 99 and body["options"]["temperature"] == 0
    assert body["messages"][0]["role"] == "system" and body["messages"][-1]["content"] == "Time to sleep."
    assert r.tool_calls[0].as_dict() == {"name": "set_mode", "args": {"mode": "sleep"}} and ctx.mode == "sleep"


@pytest.fixture(scope="module")
def openai_server(settings):
    """llama-cpp-python's OpenAI-compatible server on loopback with the cached GGUF."""
    from agent.common.models import LLM_FILES, model_path

    gguf = model_path(settings.models_dir, LLM_FILES, settings.llm.model, "LLM")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--model_alias", "mmchat"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/models", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("llama_cpp.server exited")
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_openai_backend_against_real_server(openai_server):
    from agent.session.assistant import Assistant

    s = _settings(backend="openai", url=openai_server, model="mmchat")
    ctl = Assistant(s).controller
    r = ctl.respond("Please switch to tracking mode.")
    assert r.tool_calls and r.tool_calls[0].as_dict() == {"name": "set_mode", "args": {"mode": "tracking"}}
    r = ctl.respond("What is the capital of Italy?")
    assert not r.tool_calls and "rome" in r.reply.lower()


def test_openai_backend_unreachable():
    s = _settings(backend="openai", url=f"http://127.0.0.1:{_free_port()}/v1", model="x")
    with pytest.raises(BackendUnavailableError, match="OpenAI-compatible"):
        make_chat_model(s.llm, s.models_dir)

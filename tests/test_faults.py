"""Faults around what is saved: a full disk while saving a profile or a run's outputs, and ``kill -9``
during ``main.py enroll``: a clear coded error, the session goes on, and the existing profile (or an
earlier run's files) is never corrupted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.identity.profiles import ProfileError, ProfileStore

ROOT = Path(__file__).resolve().parent.parent
SPEECH = (ROOT / "../shared/testdata/speech").resolve()


def _emb(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 kB tmpfs (root only): writes past it fail with ENOSPC like a full disk."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last block; returns the filler file (remove it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_while_saving_keeps_the_old_profile(tiny_disk):
    store = ProfileStore(tiny_disk / "profiles")
    store.enroll("bob", [_emb(1, 192)], [_emb(2, 128)])
    before = store.load("bob")
    fill(tiny_disk)
    with pytest.raises(ProfileError, match="could not save profile 'bob'.*previous one is kept") as e:
        store.enroll("bob", [_emb(3, 192)] * 50, [_emb(4, 128)] * 50)
    assert "\n" not in str(e.value) and e.value.code.value == "profile-error"
    after = ProfileStore(tiny_disk / "profiles").load("bob")
    assert np.array_equal(after.voice, before.voice) and np.array_equal(after.face, before.face)
    assert sorted(p.name for p in (tiny_disk / "profiles").iterdir()) == [".lock", "bob"]  # no half-written copy
    os.remove(tiny_disk / "filler")
    assert len(store.enroll("bob", [_emb(3, 192)], []).voice) == 2  # space again: saving works


@pytest.mark.slow
@pytest.mark.skipif(not SPEECH.is_dir(), reason="shared testdata missing")
def test_kill_9_during_enroll_never_corrupts_the_profile(tmp_path):
    """``main.py enroll`` killed at several moments (model loading, embedding, saving): every time, the
    profile that was there loads intact or with the new sample complete."""
    profiles = tmp_path / "profiles"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {profiles}\n")
    run = [sys.executable, str(ROOT / "main.py"), "enroll", "alice", "--config", str(cfg), "--json", "--voice"]
    first = subprocess.run(run + [str(SPEECH / "spk1_snt1.wav")], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    t_full = None
    counts = {1}
    for delay in (0.5, 2.0, 4.0, None, 6.0, 8.0):  # None: let one run finish, to time the others
        p = subprocess.Popen(run + [str(SPEECH / "spk1_snt2.wav")], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        t0 = time.monotonic()
        if delay is None:
            p.wait(300)
            t_full = time.monotonic() - t0
        else:
            try:
                p.wait(delay)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(30)
        p.stdout.close()
        p.stderr.close()
        prof = ProfileStore(profiles).load("alice")  # recovers a half-done swap, then must load
        n = len(prof.voice)
        assert n >= max(counts) and n <= max(counts) + 1 and prof.voice.shape[1] == 192
        assert json.loads((profiles / "alice" / "profile.json").read_text())["voice_samples"] == n
        counts.add(n)
    assert t_full is not None and max(counts) >= 2  # the unkilled run saved its sample
    assert not [p for p in profiles.iterdir() if p.name.endswith((".new", ".old"))]


def _llm_server(gguf: Path, port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--model_alias", "mmchat"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    pytest.fail("llama_cpp.server did not start")


@pytest.mark.slow
def test_llm_server_gone_and_back(settings):
    """openai backend: the LLM server dies mid-session (a clear error for that turn, the assistant keeps
    running) and comes back on the same address (the next turn is answered, no restart)."""
    from agent.common.config import load_settings
    from agent.common.models import LLM_FILES, model_path
    from agent.session.assistant import Assistant
    from tests.fakes import free_port as _free_port

    gguf = model_path(settings.models_dir, LLM_FILES, "qwen2.5-coder-0.5b", "LLM")
    port = _free_port()
    s = load_settings(None, overrides={"llm": {"backend": "openai", "url": f"http://127.0.0.1:{port}/v1",
                                               "model": "mmchat", "timeout_s": 20}})
    server = _llm_server(gguf, port)
    try:
        assistant = Assistant(s)
        assert assistant.answer("What is the capital of Italy?").result.reply.strip()
        server.kill()
        server.wait(10)
        down = assistant.answer("What is the capital of France?").result
        assert down.error and "\n" not in down.error, down  # said, not raised
        server = _llm_server(gguf, port)
        back = assistant.answer("What is the capital of Spain?").result
        assert not back.error and back.reply.strip(), back
    finally:
        server.kill()
        server.wait(10)


def test_full_disk_while_saving_run_audio_is_a_coded_error_and_leaves_nothing_half_written(tiny_disk):
    from agent.common.audio_io import load_audio, write_wav
    from agent.common.saving import StorageError

    run = tiny_disk / "run"
    kept = write_wav(run / "01-reply.wav", np.zeros(8000, np.float32), 16000)  # an earlier reply, saved
    filler = fill(tiny_disk)
    with pytest.raises(StorageError, match=r"could not save .*02-reply.wav \(No space left on device\)") as e:
        write_wav(run / "02-reply.wav", np.zeros(16000 * 5, np.float32), 16000)
    assert e.value.code.value == "storage-failed" and "\n" not in str(e.value)
    assert sorted(p.name for p in run.iterdir()) == ["01-reply.wav"]  # no truncated WAV, no .part
    assert len(load_audio(kept)) == 8000
    filler.unlink()
    assert len(load_audio(write_wav(run / "02-reply.wav", np.zeros(16000, np.float32), 16000))) == 16000


def test_new_run_dir_never_shares_a_folder_and_a_failure_is_coded(tmp_path):
    from agent.common.config import load_settings, new_run_dir
    from agent.common.saving import StorageError

    s = load_settings(None, overrides={"paths": {"runs": str(tmp_path / "runs")}})
    first, second = new_run_dir(s), new_run_dir(s)  # the same second: two folders all the same
    assert first != second and first.is_dir() and second.is_dir()
    (tmp_path / "blocked").write_text("a file where the runs folder should be")
    s = load_settings(None, overrides={"paths": {"runs": str(tmp_path / "blocked")}})
    with pytest.raises(StorageError) as e:
        new_run_dir(s)
    assert e.value.code.value == "storage-failed" and "could not save" in str(e.value)


@pytest.mark.skipif(not SPEECH.is_dir(), reason="shared testdata missing")
def test_session_on_a_full_disk_answers_and_logs_the_failed_saves(tiny_disk, settings):
    """The real session (VAD, wake word, Piper) with its run folder on a full disk: the turn still answered,
    each reply that could not be saved an ERROR event (code storage-failed), nothing half-written left;
    with space again, the next run saves its replies."""
    from agent.common.config import new_run_dir
    from agent.session.scripted import synth
    from agent.speak.tts import PiperTTS
    from tests.fakes import FakeASR, FakeController, compose, run_fake, types

    tts = PiperTTS(settings.tts, settings.models_dir)
    audio = compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")
    s = settings.model_copy(update={"paths": settings.paths.model_copy(update={"runs": str(tiny_disk / "runs")})})
    run = new_run_dir(s)
    filler = fill(tiny_disk)
    events, _ = run_fake(s, tts, audio, FakeASR(["what time is it"]), FakeController(["It is noon."]), run_dir=run)
    reply = next(e for e in events if e["type"] == "reply")
    assert reply["text"] == "It is noon." and reply["audio"] is None
    errors = [e for e in events if e["type"] == "error"]
    assert errors and all(e["stage"] == "run" and e["code"] == "storage-failed" for e in errors), errors
    assert "No space left on device" in errors[0]["message"] and "stats" in types(events)
    assert list(run.iterdir()) == []  # no truncated WAV, no .part
    filler.unlink()
    events, _ = run_fake(s, tts, audio, FakeASR(["what time is it"]), FakeController(["It is noon."]),
                         run_dir=new_run_dir(s))
    saved = next(e for e in events if e["type"] == "reply")["audio"]
    assert saved and Path(saved).stat().st_size > 1000 and "error" not in types(events)

"""Shared fixtures: settings, test data paths and one set of loaded speech models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = (ROOT / "../shared/testdata").resolve()


@pytest.fixture(scope="session")
def settings():
    from agent.common.config import load_settings

    return load_settings(ROOT / "config.yaml")


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data missing at {TESTDATA}")
    return TESTDATA


@pytest.fixture(scope="session")
def assistant(settings):
    """ASR, LLM controller (warmed) and TTS loaded once for the whole run."""
    from agent.session.assistant import Assistant

    a = Assistant(settings)
    _ = a.asr, a.tts, a.controller
    return a

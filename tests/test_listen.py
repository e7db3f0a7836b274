"""Listening front end on real recordings: sources, VAD turns, wake word, CLI."""
from __future__ import annotations

import dataclasses
import json
import queue
import time
from pathlib import Path

import numpy as np
import pytest

from agent.common.audio_io import load_audio, write_wav
from agent.common.config import load_settings
from agent.evals.wake_eval import negative_recordings, piper_phrases
from agent.listen.sources import FileSource, MicSource
from agent.listen.vad import TurnDetector, VADEvent
from agent.listen.wakeword import WakeWordDetector
from tools.common.errors import ConfigError, ErrorCode, MMChatError
from tools.common.pcm import SAMPLE_RATE as SR
from tools.common.pcm import level, trim

ROOT = Path(__file__).resolve().parent.parent
NOISE = Path("/usr/share/sounds/alsa/Noise.wav")


@pytest.fixture(scope="module")
def settings():
    return load_settings(ROOT / "config.yaml")


@pytest.fixture(scope="module")
def speech_dir(settings) -> Path:
    return settings.testdata_dir / "speech"


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def speech_segments(audio: np.ndarray, vad) -> list[VADEvent]:  # noqa: ANN001
    """All ``speech_end`` events (utterances) of the session's turn detector over a recording."""
    return [e for e in TurnDetector(vad).events(FileSource(audio, frame_ms=vad.frame_ms)) if e.type == "speech_end"]


class _Recording(queue.Queue):
    """The session's verify queue, keeping every job the conductor hands to the speaker check."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list = []

    def put(self, item, block=True, timeout=None):  # noqa: ANN001, ANN201
        self.jobs.append(item)
        super().put(item, block, timeout)


class _RejectGate:
    feed = None

    def check(self, audio, t):  # noqa: ANN001, ANN201
        from agent.identity.verify import Decision

        return Decision("reject", None, "test", "Sorry, I can't unlock: test.")

    def face_present(self, t: float) -> bool:
        return True


class _QuietTTS:
    sample_rate = SR

    def synthesize(self, text: str):  # noqa: ANN201
        yield np.zeros(int(0.2 * SR), np.float32)


class _NoASR:
    def transcribe(self, audio):  # noqa: ANN001, ANN201
        from agent.listen.asr import Transcript

        return Transcript("", "en", len(audio) / SR)


def session_commands(settings, detector, audio: np.ndarray) -> list:  # noqa: ANN001
    """The command utterances a whole session (source -> VAD -> wake -> conductor) sends to the speaker check."""
    from agent.session.runner import Parts, SessionRunner
    from agent.session.stages import make_source, make_vad

    detector.reset()
    turns, voiced = make_vad(settings)
    parts = Parts(source=make_source(settings, audio), turns=turns, voiced=voiced, wake=detector, gate=_RejectGate(),
                  asr=_NoASR(), controller=None, tts=_QuietTTS(), face_checks=False)
    runner = SessionRunner(settings, parts)
    gate_q = _Recording()
    runner.lanes = dataclasses.replace(runner.lanes, gate=gate_q)
    runner.run(max_wall_s=60)
    return [job.utt for job in gate_q.jobs if hasattr(job, "utt")]


@pytest.fixture(scope="module")
def composed(settings, speech_dir):
    """Real speech, a Piper "hey jarvis", then a real spoken question 0.2 s later (one breath)."""
    wake = level(trim(piper_phrases(settings, ("Hey Jarvis.",), (1.0,))[0][1]))
    before = level(load_audio(speech_dir / "spk1_snt1.wav"))
    question = level(load_audio(speech_dir / "spk2_snt2.wav"))
    parts = [silence(0.5), before, silence(0.6), wake, silence(0.2), question, silence(1.0)]
    bounds = np.cumsum([0] + [len(p) for p in parts]) / SR
    return {"audio": np.concatenate(parts), "wake": (bounds[3], bounds[4]), "question": (bounds[5], bounds[6])}


@pytest.fixture(scope="module")
def detector(settings):
    return WakeWordDetector(settings.wake)


def test_noise_starts_no_turn(settings):
    noise = load_audio(NOISE)
    loud_noise = np.concatenate([silence(0.5), noise, noise, noise, silence(1.0)])
    assert speech_segments(noise, settings.vad) == []
    assert speech_segments(loud_noise, settings.vad) == []


def test_speech_file_gives_one_segment_with_sensible_bounds(settings, speech_dir):
    speech = load_audio(speech_dir / "spk1_snt3.wav")
    audio = np.concatenate([silence(1.0), speech, silence(1.5)])
    segments = speech_segments(audio, settings.vad)
    assert len(segments) == 1
    seg = segments[0]
    start_s = seg.start_s + settings.vad.pre_roll_ms / 1000  # start of the detected speech
    assert 0.8 <= start_s <= 1.3
    assert 1.0 + len(speech) / SR - 0.4 <= seg.time_s <= 1.0 + len(speech) / SR + 0.3
    assert seg.start_s <= 1.0  # the pre-roll keeps the first syllable
    assert len(seg.audio) / SR >= len(speech) / SR - 0.2


def test_noise_after_speech_ends_the_turn(settings, speech_dir):
    speech = load_audio(speech_dir / "spk2_snt1.wav")
    noise = load_audio(NOISE)
    audio = np.concatenate([silence(0.5), speech, np.tile(noise, 3)])
    events = list(TurnDetector(settings.vad).events(FileSource(audio)))
    assert [e.type for e in events if e.type != "speech_pause"] == ["speech_start", "speech_end"]
    assert next(e for e in events if e.type == "speech_end").time_s <= 0.5 + len(speech) / SR + 0.3


def test_composed_recording_one_wake_and_question_kept(settings, detector, composed):
    hits = detector.detect(composed["audio"])
    assert len(hits) == 1
    w0, w1 = composed["wake"]
    assert w0 < hits[0]["time_s"] <= w1 + 0.5
    assert hits[0]["phrase"] == "hey jarvis" and hits[0]["score"] >= settings.wake.threshold

    commands = session_commands(settings, detector, composed["audio"])
    assert len(commands) == 1
    turn = commands[0]  # cut session.command.lookback_s before the detection: the question kept whole
    q0, q1 = composed["question"]
    assert turn.start <= q0 and turn.start + len(turn.audio) / SR >= q1 - 0.15


def test_command_reaches_asr(settings, detector, composed):
    from agent.listen.asr import WhisperASR

    command = session_commands(settings, detector, composed["audio"])[0]
    text = WhisperASR(settings.asr, settings.models_dir).transcribe(command.audio).text.lower()
    assert "joy" in text and "living" in text


def test_no_wake_word_in_real_speech(settings, detector):
    recordings = negative_recordings(settings)
    stream = np.concatenate([x for _, a in recordings for x in (a, silence(0.3))])
    assert len(stream) / SR > 200  # pocketsphinx + codec2 + testdata speech
    assert detector.detect(stream) == []


def test_file_source_frames_and_pacing(speech_dir):
    path = speech_dir / "spk2_snt3.wav"
    n = len(load_audio(path))
    t0 = time.perf_counter()
    frames = list(FileSource(path, frame_ms=30))
    assert time.perf_counter() - t0 < 0.5 * n / SR  # fast mode: faster than real time
    assert len(frames) == -(-n // 480)
    assert all(f.dtype == np.int16 and len(f) == 480 for f in frames)
    short = FileSource(np.zeros(int(0.3 * SR), np.float32), frame_ms=20, realtime=True)
    t0 = time.perf_counter()
    assert len(list(short)) == 15
    assert time.perf_counter() - t0 >= 0.28  # real-time mode: paced like a microphone


def test_missing_microphone_is_a_typed_error(monkeypatch):
    import sounddevice as sd

    def no_device(*args, **kwargs):
        raise sd.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sd, "query_devices", no_device)
    with pytest.raises(MMChatError) as err:
        MicSource()
    assert err.value.code == ErrorCode.DEVICE and "no microphone found" in str(err.value)


def test_wake_cli_json(composed, tmp_path, capsys):
    from agent.app.cli import main

    wav = write_wav(tmp_path / "composed.wav", composed["audio"], SR)
    assert main(["wake", str(wav), "--json", "--config", str(ROOT / "config.yaml")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["detections"]) == 1 and set(out["detections"][0]) == {"time_s", "score", "phrase"}
    assert main(["wake", str(wav), "--threshold", "2", "--config", str(ROOT / "config.yaml")]) == 2


def test_settings_sections_refuse_bad_values(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("vad:\n  end_silence_ms: 5\n")
    with pytest.raises(ConfigError, match="vad.end_silence_ms"):
        load_settings(bad)
    bad.write_text("wake:\n  treshold: 0.5\n")
    with pytest.raises(ConfigError, match="wake.treshold: unknown key"):
        load_settings(bad)

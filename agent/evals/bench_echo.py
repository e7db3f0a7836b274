"""Echo cancellation on our own voice: how much echo is removed, what is left of the user, barge-in.

Our Piper reply goes through a simulated room (``RoomEcho``: session.echo.gain,
echo.delay_ms) into the mic; a real recording of a user (../shared/testdata/speech)
talks over the second half. Figures: echo return loss enhancement on echo-only audio
(after our first half second), the user's loss during double talk, whether the
barge-in detector fires during double talk and never on echo alone, and the cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.common.config import Settings
from agent.evals.stats import figure
from agent.listen.echo import RoomEcho, WebRtcEchoCanceller, erle_db
from agent.listen.sources import frames_of
from tools.common.pcm import to_float

REPLY = ("Hey Jarvis. Hey Jarvis. That is my wake word, and I should never wake myself up. "
         "Here is a longer answer, so that you can hear how it sounds while you talk over it.")


@dataclass
class EchoRun:
    erle_db: float  # echo removed on echo-only audio
    user_loss_db: float  # the user's speech lost during double talk
    barge_in: bool  # the detector fired during double talk
    false_barge_in: bool  # ... or on echo alone
    ms_per_frame: float
    mic: np.ndarray
    out: np.ndarray
    split: int  # where the user starts


def cancel(reply: np.ndarray, user: np.ndarray, settings: Settings, lead_s: float = 1.0) -> EchoRun:
    """Reply (+ room echo) with the user over its second half, through AEC3 and the barge-in detector."""
    from agent.listen.frontend import FrontEnd
    from agent.session.stages import make_vad

    cfg, frame = settings.session.echo, 16 * settings.vad.frame_ms
    lead = int(16000 * lead_s)  # the stream runs before we speak, as in a session
    n, at = lead + len(reply) + 16000, lead + len(reply) // 2
    ref, near = np.zeros(n, np.float32), np.zeros(n, np.float32)
    ref[lead:lead + len(reply)] = reply
    near[at:at + len(user)] = user[:n - at]
    echo = RoomEcho.for_session(cfg).apply(ref)
    mic = echo + near
    front = FrontEnd.from_settings(settings, *make_vad(settings), 16000, WebRtcEchoCanceller())  # VAD-stage steps
    out, fired, cost = [], [], 0.0
    for i, m in enumerate(frames_of(mic, frame)):
        step = front.process(m, np.pad(ref[i * frame:(i + 1) * frame], (0, max(0, (i + 1) * frame - n))))
        cost += step.aec_s
        out.append(to_float(step.pcm))
        if step.barge_in:
            fired.append(i * frame)
    out_a = np.concatenate(out)[:n]
    alone, talk = slice(lead + 8000, at), slice(at, min(n, at + len(user)))
    return EchoRun(erle_db(echo[alone], out_a[alone]), erle_db(near[talk], out_a[talk]),
                   any(at <= f < at + len(user) for f in fired), any(f < at for f in fired),
                   1000 * cost / max(1, len(out)), mic, out_a, at)


def bench_echo(settings: Settings, repeat: int) -> dict:
    from agent.common.audio_io import load_audio
    from agent.session.assistant import Assistant
    from agent.session.scripted import synth
    from tools.common.pcm import level

    reply = synth(Assistant(settings).tts, REPLY)
    users = sorted((settings.testdata_dir / "speech").glob("*.wav"))[: max(2, 2 * repeat)]
    runs = [cancel(reply, level(load_audio(u)), settings) for u in users]
    return {
        "aec_erle": figure([r.erle_db for r in runs], "dB"),
        "aec_user_loss": figure([r.user_loss_db for r in runs], "dB"),
        "aec_barge_in_detected": figure([float(r.barge_in) for r in runs], "share"),
        "aec_false_barge_in": figure([float(r.false_barge_in) for r in runs], "share"),
        "aec_frame": figure([r.ms_per_frame for r in runs], "ms", frame_ms=settings.vad.frame_ms),
    }

"""Speech-path latency: ASR, LLM first token/sentence, TTS first audio, voice to voice.

No-tool turns use the real read speech in ../shared/testdata/speech. One-tool
turns need spoken requests for a tool, which that folder does not have: they are
synthesised once with the Piper voice and go through ASR like any recording,
with messi5.jpg as the camera view so describe_scene returns real detections
and the reply needs a second LLM pass (the slow path).
"""
from __future__ import annotations

import time

from agent.common.audio_io import load_audio
from agent.common.config import Settings
from agent.evals.stats import figure
from agent.session.assistant import Assistant
from agent.session.perception import PerceptionHook
from agent.speak.speech_out import BufferSink
from tools import ToolContext
from tools.common.pcm import resample

TOOL_REQUESTS = ("What do you see right now?", "Describe what is in front of the camera.",
                 "Can you tell me what you are looking at?")


def _tool_recordings(assistant: Assistant) -> list:
    out = []
    for text in TOOL_REQUESTS:
        sink = BufferSink()
        assistant.speak(text, sink)
        out.append(resample(sink.audio, sink.sample_rate, 16000))
    return out


def bench_speech(settings: Settings, repeat: int) -> dict:
    ctx = ToolContext()
    assistant = Assistant(settings, tool_context=ctx)
    speech_dir = settings.testdata_dir / "speech"
    files = sorted(speech_dir.glob("*.wav"))[: max(2, 2 * repeat)]
    recordings = [load_audio(f) for f in files]
    _ = assistant.asr, assistant.tts, assistant.controller  # load (and warm) before timing

    asr = []
    for audio in recordings:
        t0 = time.perf_counter()
        assistant.asr.transcribe(audio)
        asr.append(time.perf_counter() - t0)

    tts_first = []
    for text in ("Sure, here is what I found.", "The capital of France is Paris.")[: max(1, repeat)]:
        tts_first.append(assistant.speak(text, BufferSink()))

    def turns(audios: list, key: str) -> dict[str, list[float]]:
        acc: dict[str, list[float]] = {}
        for audio in audios:
            _, result, _ = assistant.spoken_turn(audio)
            assistant.controller.history.clear()
            for name in ("llm_first_token_s", "llm_first_sentence_s", "reply_first_sentence_s",
                         "voice_to_voice_s", "tool_s"):
                if name in result.timings:
                    acc.setdefault(f"{key}.{name}", []).append(result.timings[name])
            acc.setdefault(f"{key}.tool_calls", []).append(len(result.tool_calls))
        return acc

    no_tool = turns(recordings, "no_tool")
    image = settings.testdata_dir / "scenes" / "messi5.jpg"
    with PerceptionHook(settings, ctx, image=str(image)):
        one_tool = turns(_tool_recordings(assistant)[: max(1, repeat)], "one_tool")

    out = {"asr_s": figure(asr, model=settings.asr.model),
           "tts_first_audio_s": figure(tts_first, voice=settings.tts.voice)}
    for name, values in {**no_tool, **one_tool}.items():
        unit = "calls" if name.endswith("tool_calls") else "s"
        out[name] = figure(values, unit=unit, llm=f"{settings.llm.backend}:{settings.llm.model}")
    return out

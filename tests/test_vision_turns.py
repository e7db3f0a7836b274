"""Spoken and text turns grounded in what the camera sees (real images, real models)."""
from __future__ import annotations

import re

from agent.session.perception import PerceptionHook, turn_emotion
from agent.speak.speech_out import BufferSink
from tools.common.pcm import resample


def _spoken(assistant, text: str):
    sink = BufferSink()
    assistant.speak(text, sink)
    return resample(sink.audio, sink.sample_rate, 16000)


def test_spoken_what_do_you_see_names_detections(assistant, settings, testdata):
    question = _spoken(assistant, "What do you see?")
    with PerceptionHook(settings, assistant.tool_context, image=str(testdata / "scenes" / "messi5.jpg")) as seen:
        facts = seen.scene()
        transcript, result, sink = assistant.spoken_turn(question)
    assistant.controller.history.clear()
    print(transcript, "->", result.reply)
    assert "see" in transcript.lower()
    assert [c.name for c in result.tool_calls] == ["describe_scene"]
    labels = {o["label"] for o in facts.data["objects"]}
    assert "person" in labels
    words = {w for label in labels for w in label.split()} | {"people", "person", "player"}
    assert any(w in result.reply.lower() for w in words), (result.reply, facts.summary)
    # never objects that were not detected: no COCO label outside the detections is named
    for absent in ("car", "dog", "cat", "bottle", "chair", "laptop"):
        if absent not in labels:
            assert not re.search(rf"\b{absent}s?\b", result.reply.lower()), result.reply
    assert len(sink.audio) > 0


def test_detected_emotion_changes_the_reply(assistant, settings, testdata):
    """The camera's emotion (a smiling face) styles the reply; with no face it is neutral."""
    text = "Can you suggest something to do this evening?"
    replies = {}
    face = testdata / "faces" / "enroll" / "obama" / "obama.jpg"
    with PerceptionHook(settings, assistant.tool_context, image=str(face)) as seen:
        emotion = turn_emotion(None, seen)
        replies[emotion] = assistant.controller.respond(text, emotion)
    assistant.controller.history.clear()
    replies["neutral"] = assistant.controller.respond(text, turn_emotion(None, None))
    assistant.controller.history.clear()
    print({k: v.reply for k, v in replies.items()})
    assert emotion and emotion != "neutral"
    assert replies[emotion].emotion == emotion and replies["neutral"].emotion == "neutral"
    assert replies[emotion].reply != replies["neutral"].reply

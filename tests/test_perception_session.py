"""Perception running beside the hands-free session: held gestures switch modes, the seen emotion styles replies."""
from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from agent.common.config import load_settings
from agent.session.conductor import Conductor
from agent.session.perception import seen_emotion
from agent.session.responses import Spoken
from agent.session.stages import Busy, GestureHit, Stage, StageResult
from agent.session.state import Session
from agent.session.turns import Lanes, TurnPolicy
from agent.speak.playback import Playback, StreamClock
from agent.speak.reply import Reply, ReplyKind
from agent.think.controller import Controller, TurnResult
from agent.think.prompts import PromptBook
from tests.fakes import FakeASR, FakeGate, compose, run_fake, types
from tools import ToolContext, build_tools
from tools.vision import gestures as g
from tools.vision.gesture_modes import GestureModeSwitch
from tools.vision.state import PerceptionService, Snapshot

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = load_settings(ROOT / "config.yaml")
TD = SETTINGS.testdata_dir
KEYPOINTS = TD / "gestures" / "hand_keypoints.csv"
FACE = TD / "faces" / "enroll" / "kit_harington" / "john1.jpeg"
VISION = SETTINGS.vision
FRAME_MS = 1000 / 15  # a 15 fps camera
pytestmark = pytest.mark.skipif(not KEYPOINTS.is_file(), reason="../shared/testdata not present")


# -- gestures -> mode ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hands() -> dict[str, list[np.ndarray]]:
    """Held-out real keypoint rows per label, as MediaPipe-like (21, 2) pixel landmarks of a 640x480 frame."""
    x, y = g.load_csv(KEYPOINTS, 2 * g.N_LANDMARKS)
    _, test = g.held_out_split(y)
    wrist = np.array([320.0, 300.0])
    return {label: [wrist + 150.0 * x[i].reshape(g.N_LANDMARKS, 2) for i in test if y[i] == k]
            for k, label in enumerate(g.STATIC_LABELS)}


@pytest.fixture(scope="module")
def recognizer() -> g.GestureRecognizer:
    return g.GestureRecognizer(min_score=VISION.gesture_min_score)


def play(switch: GestureModeSwitch, recognizer: g.GestureRecognizer, frames: list[np.ndarray],
         t0_s: float = 100.0) -> list[tuple[float, dict | None]]:
    """Each frame's landmarks -> recognised gesture -> a Snapshot through ``observe`` (as the camera stage does);
    returns (ms since the first frame, the event the frame fired or None)."""
    fired = []
    for i, points in enumerate(frames):
        t = t0_s + i * FRAME_MS / 1000
        hand = {"gesture": recognizer.shape(points).label, "score": 1.0, "handedness": "Right", "motion": None}
        fired.append((i * FRAME_MS, switch.observe(Snapshot(t=t, width=640, height=480, hands=(hand,)))))
    return fired


def test_held_fist_selects_privacy_only_after_the_hold_time(hands, recognizer):
    switch = GestureModeSwitch.from_settings(VISION)
    events: list[dict] = []
    switch.listeners.append(events.append)
    n = int(np.ceil(VISION.gesture_hold_ms / FRAME_MS)) + 10
    fired = play(switch, recognizer, hands["Close"][:n])
    expected = VISION.gesture_modes["Close"]
    assert expected == "privacy"
    first = next(i for i, (_, e) in enumerate(fired) if e is not None)
    assert fired[first][0] >= VISION.gesture_hold_ms and first + 1 >= VISION.gesture_hold_frames  # not before
    assert fired[first - 1][0] < VISION.gesture_hold_ms or first < VISION.gesture_hold_frames  # the hold time
    assert all(e is None for _, e in fired[first + 1:])  # fired once, not on every later frame of the same hold
    assert events == [fired[first][1]] == [{"type": "gesture", "gesture": "Close", "action": "privacy",
                                            "mode": "privacy"}]  # a report only: the session applies the mode


def test_flickering_or_short_gestures_do_not_switch(hands, recognizer):
    switch = GestureModeSwitch.from_settings(VISION)
    events: list[dict] = []
    switch.listeners.append(events.append)
    n = int(3 * VISION.gesture_hold_ms / FRAME_MS)
    close, pointer = hands["Close"], hands["Pointer"]
    flicker = [close[i] if (i // 3) % 2 == 0 else pointer[i] for i in range(n)]  # 200 ms each
    fired = play(switch, recognizer, flicker)
    assert {e is None for _, e in fired} == {True} and events == []
    switch.update(None, 150_000)  # the hand leaves, then comes back as a fist
    short = close[:max(int(VISION.gesture_hold_ms / FRAME_MS) - 1, 1)]  # let go just before the hold time
    fired = play(switch, recognizer, short, t0_s=200.0)
    switch.update(None, 200_000 + VISION.gesture_hold_ms + 500)  # the hand leaves
    assert {e is None for _, e in fired} == {True} and events == []


def test_ok_confirms_without_a_mode(hands, recognizer):
    switch = GestureModeSwitch.from_settings(VISION)
    events: list[dict] = []
    switch.listeners.append(events.append)
    play(switch, recognizer, hands["OK"][:int(2 * VISION.gesture_hold_ms / FRAME_MS)])
    assert events == [{"type": "gesture", "gesture": "OK", "action": "confirm", "mode": None}]


def _session_thread(ctx: ToolContext) -> tuple[Session, Conductor, queue.Queue, Busy]:
    """An unlocked session and its conductor on ``ctx`` (the session listens to its mode, as the runner wires it)."""
    session = Session(SETTINGS.session)
    ctx.listeners.append(session.mode_changed)
    clock, hub = StreamClock(), queue.Queue()
    busy = Busy(clock)
    conductor = Conductor(session, Lanes(hub=hub), Playback(clock), busy, TurnPolicy(), ctx=ctx)
    session.wake(0.0, 0.9, "hey jarvis")
    assert session.verified(1.0, {"decision": "accept", "user": "demo"}) and session.active
    return session, conductor, hub, busy


def test_gesture_hit_sets_the_mode_on_the_session_thread_and_locks_after_its_event():
    """Model-free: the conductor applies a GestureHit's mode; privacy locks at once when idle, logged in order."""
    ctx = ToolContext()
    told: list[str] = []
    ctx.listeners.append(told.append)
    session, conductor, _, _ = _session_thread(ctx)
    conductor.handle(GestureHit("Close", "privacy", "privacy"))
    assert ctx.mode == "privacy" and told == ["privacy"] and not session.active
    assert types(session.events)[-2:] == ["gesture", "lock"]
    gesture, lock = session.events[-2:]
    assert (gesture["mode"], gesture["previous"], lock["reason"]) == ("privacy", "conversation", "privacy mode")


def test_gesture_confirm_and_unlocking_modes_keep_the_session():
    ctx = ToolContext(mode="tracking")
    session, conductor, _, _ = _session_thread(ctx)
    conductor.handle(GestureHit("OK", "confirm", None))
    assert ctx.mode == "tracking" and session.active  # confirm changes nothing
    assert session.events[-1] == {**session.events[-1], "type": "gesture", "mode": None, "previous": "tracking"}
    conductor.handle(GestureHit("Open", "conversation", "conversation"))
    assert ctx.mode == "conversation" and session.active
    assert session.events[-1]["previous"] == "tracking" and types(session.events)[-1] == "gesture"


def test_gesture_lock_waits_for_the_reply_in_progress():
    ctx = ToolContext()
    session, conductor, _, busy = _session_thread(ctx)
    busy.add()  # a reply is being spoken
    conductor.handle(GestureHit("Close", "privacy", "privacy"))
    assert ctx.mode == "privacy" and session.active and types(session.events)[-1] == "gesture"
    reply = Reply(ReplyKind.REPLY, "Sure.", None, None)  # spoken: its result ends the job
    conductor.handle(StageResult(Stage.REPLY, None, Spoken(reply, None)))
    assert types(session.events)[-3:] == ["gesture", "reply", "lock"] and not session.active


def test_spoken_mode_change_still_locks_after_its_reply():
    """The set_mode tool (controller thread) keeps its route: the session's listener, applied after the reply."""
    ctx = ToolContext()
    session, conductor, _, busy = _session_thread(ctx)
    busy.add()
    set_mode = next(t for t in build_tools(ctx) if t.name == "set_mode")
    worker = threading.Thread(target=set_mode.invoke, args=({"mode": "privacy"},))
    worker.start()
    worker.join()
    assert ctx.mode == "privacy" and session.active
    reply = Reply(ReplyKind.REPLY, "Privacy mode on.", None, None)
    conductor.handle(StageResult(Stage.REPLY, None, Spoken(reply, None)))
    assert types(session.events)[-2:] == ["reply", "lock"] and session.events[-1]["reason"] == "privacy mode"


def test_gesture_locks_an_active_session(hands, recognizer):
    """The camera's held fist reaches the session thread as a GestureHit: logged, then privacy locks when idle."""
    ctx = ToolContext()
    session, conductor, hub, _ = _session_thread(ctx)
    switch = GestureModeSwitch.from_settings(VISION)
    switch.listeners.append(lambda e: hub.put(GestureHit(e["gesture"], e["action"], e["mode"])))
    play(switch, recognizer, hands["Close"][:int(2 * VISION.gesture_hold_ms / FRAME_MS)])
    assert ctx.mode == "conversation" and session.active  # nothing applied on the camera's side
    while not hub.empty():
        conductor.handle(hub.get())
    assert not session.active and ctx.mode == "privacy"
    assert types(session.events)[-2:] == ["gesture", "lock"]
    assert session.events[-2]["previous"] == "conversation" and session.events[-1]["reason"] == "privacy mode"


# -- the seen emotion styles the turn -----------------------------------------------------------------
def scripted_controller(ctx: ToolContext) -> Controller:
    """The real controller over a scripted LLM that always answers the same sentence."""
    llm = GenericFakeChatModel(messages=itertools.cycle(["I'm here with you. Tell me more."]))
    return Controller(llm, build_tools(ctx), PromptBook(), SETTINGS.controller)


class Recording:
    """Keeps every TurnResult of the wrapped controller."""

    def __init__(self, inner: Controller) -> None:
        self.inner, self.results = inner, []

    def respond(self, text, emotion=None, on_sentence=None, cancel=None) -> TurnResult:
        self.results.append(self.inner.respond(text, emotion, on_sentence=on_sentence, cancel=cancel))
        return self.results[-1]


@pytest.fixture(scope="module")
def face_snapshot() -> tuple[PerceptionService, Snapshot]:
    from agent.session.perception import build_frame_processor

    processor = build_frame_processor(SETTINGS, video=False)
    seen: list[Snapshot] = []
    processor.listeners.append(seen.append)
    snap = processor.process_image(FACE)
    assert seen == [snap] and snap.faces  # listeners see every published snapshot
    return PerceptionService(processor.state), snap


def test_seen_emotion_follows_the_real_analyser(face_snapshot):
    service, snap = face_snapshot
    ctx = ToolContext(perception=service)
    service.state.publish(snap)
    assert seen_emotion(ctx) == snap.main_face()["emotion"] == service.emotion().data["emotion"]
    assert seen_emotion(ToolContext()) is None
    stale = dataclasses.replace(snap, t=snap.t - 10 * service.max_age_s, live=True)
    service.state.publish(stale)
    assert seen_emotion(ctx) is None  # an old picture says nothing about the user now
    assert scripted_controller(ctx).respond("hello", seen_emotion(ctx)).emotion == "neutral"


def test_session_turn_uses_the_perceived_emotion(face_snapshot):
    """A whole session turn: the main face seen as sad -> controller.respond(emotion='sad') -> styled reply."""
    from agent.session.assistant import Assistant
    from agent.session.scripted import synth

    service, snap = face_snapshot
    face = snap.main_face()
    sad_scores = {e: (0.9 if e == "sad" else 0.02) for e in face["emotion_scores"]}  # the fusion reads scores
    sad = dataclasses.replace(snap, faces=tuple({**f, "emotion": "sad", "emotion_scores": sad_scores} if f is face
                                                else f for f in snap.faces))
    service.state.publish(sad)  # the real analyser's face, its emotion read as sad (a still: never stale)
    ctx = ToolContext(perception=service)
    controller = Recording(scripted_controller(ctx))
    tts = Assistant(SETTINGS).tts
    audio = compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")
    events, _ = run_fake(SETTINGS, tts, audio, FakeASR(["I had a rough day"]), controller, gate=FakeGate(), ctx=ctx)
    assert [r.emotion for r in controller.results] == ["sad"], events
    reply = next(e for e in events if e["type"] == "reply")
    assert reply["emotion"] == "sad" and reply["text"]


def test_session_runs_the_camera_stage_on_its_face_video():
    """build_parts' camera stage on the gate's face video: started with the session, read per turn, stopped after."""
    from agent.identity.gate import VideoFace
    from agent.session.assistant import Assistant
    from agent.session.runner import Parts, SessionRunner, session_perception
    from agent.session.scripted import synth
    from agent.session.stages import make_source, make_vad, make_wake
    from tools.vision.emotion import EMOTIONS

    ctx = ToolContext()
    hook = session_perception(SETTINGS, VideoFace(TD / "faces" / "probe" / "short_hamilton_clip.mp4"), ctx)
    assert hook is not None and hook.gestures is not None
    tts = Assistant(SETTINGS).tts
    controller = Recording(scripted_controller(ctx))
    turns, voiced = make_vad(SETTINGS)
    parts = Parts(source=make_source(SETTINGS, compose(synth(tts, "Hey Jarvis."), "spk1_snt4.wav")), turns=turns,
                  voiced=voiced, wake=make_wake(SETTINGS), gate=FakeGate(), asr=FakeASR(["how do I look"]),
                  controller=controller, tts=tts, face_checks=False, tool_context=ctx, perception=hook)
    events = SessionRunner(SETTINGS, parts).run(max_wall_s=60)
    assert "reply" in types(events) and len(controller.results) == 1
    assert controller.results[0].emotion in EMOTIONS
    assert hook.stage is not None and hook.stage.frames_processed > 0 and not hook.stage.running
    assert ctx.perception is None  # restored when the session ends

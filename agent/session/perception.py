"""Connects the camera stage to a turn (``--image`` / ``--video`` on ``ask`` and ``turn``) or to a session."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.common.config import Settings
from agent.identity.face_classifier import face_namer
from tools.base import ToolContext
from tools.common.errors import ErrorCode, MMChatError
from tools.slam.stage import MappingStage
from tools.vision.camera import CameraStage, FrameProcessor, FrameSource, TeeSource
from tools.vision.capture import open_source
from tools.vision.face_hands import load_image
from tools.vision.gesture_modes import GestureModeSwitch
from tools.vision.state import DEFAULT_MAX_AGE_S, PerceptionService

if TYPE_CHECKING:
    from tools.affect.service import Affect

FIRST_FRAME_TIMEOUT_S = 30.0
VIDEO_MAX_FPS = 5.0  # leave the CPU to ASR/LLM/TTS: the stage skips frames instead


def build_frame_processor(settings: Settings, video: bool, faces_and_hands: bool = True) -> FrameProcessor:
    """The camera stage's processor, naming enrolled faces (the one place tools meet the profiles)."""
    namer = face_namer(settings, video) if faces_and_hands else None
    return FrameProcessor.from_settings(settings, video=video, faces_and_hands=faces_and_hands, namer=namer)


class PerceptionHook:
    """Set ``ctx.perception`` from an image (analysed once, on entry) or a video (camera stage running).

    Inputs are checked on construction, before any model loads, so a bad path fails fast. ``source``: an
    already open camera (e.g. the live one the face gate shares); the stage closes it on exit.
    ``with PerceptionHook(...) as service`` yields the service, or None when neither input is given (``ctx`` is left alone).
    ``gestures=True`` adds a ``GestureModeSwitch`` (``self.gestures``) that reports held hand gestures on
    the stream to its listeners (the session applies their mode); ``loop=False`` lets a video end (the state then goes stale).
    """

    def __init__(self, settings: Settings, ctx: ToolContext, image: str | None = None, video: str | None = None,
                 max_age_s: float = DEFAULT_MAX_AGE_S, loop: bool = True, gestures: bool = False,
                 mapping: bool = False, source: FrameSource | None = None) -> None:
        self.settings, self.ctx, self.image, self.max_age_s = settings, ctx, image, max_age_s
        self.image_array = load_image(image) if image else None
        self.source = source if source is not None else open_source(video, loop=loop) if video else None
        self.stage: CameraStage | None = None
        self.gestures = GestureModeSwitch.from_settings(settings.vision) if gestures else None
        self.mapping: MappingStage | None = None
        self.make_processor = build_frame_processor  # (settings, video) -> FrameProcessor; the server's live
        # sessions swap in one over their shared models (agent/app/rtc/shared.py)
        if mapping and self.source is not None:  # SLAM beside perception on the same frames (mapping mode only)
            self.mapping = MappingStage.for_camera(settings.slam)  # shares the processor's detector on entry
            self.source = TeeSource(self.source, self.mapping.offer)
        self._restore = ctx.saved("perception", "map_query")

    def __enter__(self) -> PerceptionService | None:
        if self.image_array is None and self.source is None:
            return None
        try:
            return self._enter()
        except BaseException:  # a failed start leaves no thread running and no device open
            self.__exit__(None, None, None)
            raise

    def _enter(self) -> PerceptionService:
        processor = self.make_processor(self.settings, video=self.source is not None)
        if self.gestures is not None:
            processor.listeners.append(self.gestures.observe)
        if self.image_array is not None:
            processor.process_image(self.image_array)
        else:
            assert self.source is not None
            if self.mapping is not None:
                self.mapping.detector = processor.detector  # one ONNX session (thread-safe) for both stages
                self.mapping.attach(self.ctx).start()
            self.stage = CameraStage(processor, self.source, max_fps=VIDEO_MAX_FPS).start()
            if not processor.state.wait(FIRST_FRAME_TIMEOUT_S):
                raise MMChatError(f"no video frame analysed within {FIRST_FRAME_TIMEOUT_S:.0f} s"
                                  + (f" ({self.stage.error})" if self.stage.error else ""), ErrorCode.DEVICE)
        self.ctx.perception = PerceptionService(processor.state, max_age_s=self.max_age_s)
        return self.ctx.perception

    def __exit__(self, *exc: object) -> None:
        self._restore()
        if self.mapping is not None:
            self.mapping.stop()
            if self.mapping.on_mode in self.ctx.listeners:
                self.ctx.listeners.remove(self.mapping.on_mode)
        if self.stage is not None:
            self.stage.stop()
        elif self.source is not None:
            self.source.close()


def turn_emotion(given: str | None, service: PerceptionService | None, text: str | None = None,
                 ctx: ToolContext | None = None, affect: "Affect | None" = None) -> str | None:
    """The emotion for the reply style: ``--emotion`` wins, else the face seen fused with the words
    (``text``), else None. Without ``text`` it is the main face's emotion, as before."""
    if given:
        return given
    if text is None:
        return service.user_emotion() if service is not None else None
    return fused_turn_emotion(service, text, ctx, affect)


def seen_emotion(ctx: ToolContext, text: str | None = None, affect: "Affect | None" = None) -> str | None:
    """The main face's emotion in ``ctx.perception``'s fresh snapshot (None: no camera, no face, stale);
    with the turn's ``text``, that face fused with the words (tools/affect/fusion.py)."""
    if text is not None:
        return fused_turn_emotion(ctx.perception, text, ctx, affect)
    if ctx.perception is None:
        return None
    r = ctx.perception.emotion()
    return r.data.get("emotion") if r.ok else None


def fused_turn_emotion(service: Any, text: str, ctx: ToolContext | None = None,
                       affect: "Affect | None" = None) -> str | None:
    """Face (if a fresh one is seen) + words -> the fused emotion; kept on ``ctx.affect`` for read_emotion."""
    from agent.common.config import AffectSettings
    from tools.affect.reading import ModalityReading
    from tools.affect.service import Affect

    affect = affect or Affect.shared(AffectSettings())
    face = None
    if service is not None:
        r = service.emotion()
        face = ModalityReading.of(list(_ordered(r.data["scores"]))) if r.ok else \
            ModalityReading.none(str(r.data.get("status", "no face")))
    words = affect.text(text)
    fused = affect.fuse(face, words)
    if ctx is not None:
        ctx.affect = {"text": words.as_json(), "face": face.as_json() if face else None, **fused.as_json()}
    return fused.emotion


def _ordered(scores: dict[str, float]) -> list[float]:
    from tools.vision.emotion import EMOTIONS

    return [float(scores.get(e, 0.0)) for e in EMOTIONS]

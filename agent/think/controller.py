"""The controller: one LLM pass decides between a spoken answer and a tool call.

The prompt prefix (system prompt + few-shot turns) never changes, so llama.cpp
reuses its KV cache and a turn only pays for the new tokens. The model either
starts speaking (streamed sentence by sentence to ``on_sentence``) or writes a
JSON tool call, which is parsed leniently, validated, run, and answered in a
second pass from the tool's result. The user's emotion selects a style template
placed just before the user's words.
"""
from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from agent.common.config import ControllerSettings
from agent.common.phrases import FALLBACK_GARBLED, FALLBACK_TOOL
from agent.common.timing import Stopwatch
from agent.think.llm_state import PassCounter
from agent.think.prompts import PromptBook, Style
from agent.think.router import IntentScorer, RouterPolicy, arbitrate, direct_call
from agent.think.sentences import SentenceSplitter
from agent.think.toolcall import ToolCall, ToolCallError, looks_like_call, parse_tool_call
from tools.common.errors import ErrorCode, LLMError, MMChatError

_UNDECIDED = ("```", "<tool_call>", "[{")

SentenceSink = Callable[[str], None]


class GarbledOutput(ToolCallError):
    """The model wrote JSON that is no tool call at all."""


@dataclass
class TurnResult:
    text: str
    reply: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    emotion: str = "neutral"
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    interrupted: bool = False

    def as_json(self) -> dict:
        return {"reply": self.reply, "tool_calls": [c.as_dict() for c in self.tool_calls],
                "emotion": self.emotion, "timings": self.timings, "error": self.error,
                "interrupted": self.interrupted}


@dataclass
class _Pass:
    kind: str = ""  # "text" | "call" | "" (nothing)
    raw: str = ""
    spoken: list[str] = field(default_factory=list)  # pieces handed to speech (sentences or a first clause)


class Controller:
    """Routes one user utterance to a reply, calling at most one tool."""

    def __init__(self, llm: Runnable, tools: list[BaseTool], prompts: PromptBook,
                 settings: ControllerSettings, router: IntentScorer | None = None,
                 reply_llm: Runnable | None = None, route_answers: bool = True,
                 styled_llms: Mapping[str, Runnable] | None = None) -> None:
        """``styled_llms``: per style family, an answering context of its own (in-process: each keeps
        persona + style in its KV cache, so a styled answer evaluates only the new turn); else ``reply_llm``."""
        self.llm = llm
        self.reply_llm = reply_llm or llm
        self.styled_llms = dict(styled_llms or {})
        # True: neutral answers stream from the routing pass itself; False: every
        # answer comes from ``reply_llm`` (e.g. a smaller, faster model).
        self.route_answers = route_answers
        self.router = router
        self.policy = RouterPolicy(settings.router_accept, settings.router_accept_margin,
                                   settings.router_swap_margin, settings.router_support)
        self.tools = {t.name: t for t in tools}
        self.schemas = {t.name: t.args_schema for t in tools}
        self.prompts = prompts
        self.settings = settings
        self.history: deque[tuple[str, str]] = deque(maxlen=max(1, settings.history_turns))
        self._prefix = self._build_prefix()

    # -- prompt -----------------------------------------------------------------
    def _build_prefix(self) -> list[BaseMessage]:
        msgs: list[BaseMessage] = [SystemMessage(self.prompts.system_prompt(list(self.tools.values())))]
        for ex in self.prompts.examples:
            answer = ex["assistant"]
            if answer.startswith("{"):
                call = json.loads(answer)
                answer = self.prompts.call_text(call["name"], call["arguments"])
            msgs += [HumanMessage(ex["user"]), AIMessage(answer)]
        return msgs

    def _history(self) -> list[BaseMessage]:
        msgs: list[BaseMessage] = []
        if self.settings.history_turns:
            for user, assistant in self.history:
                msgs += [HumanMessage(user), AIMessage(assistant)]
        return msgs

    def _route_messages(self, text: str) -> list[BaseMessage]:
        """Fixed tool prefix + history + the user's words (no style: it derails routing)."""
        return [*self._prefix, *self._history(), HumanMessage(text)]

    def _reply_messages(self, text: str, style: Style,
                        extra: tuple[BaseMessage, ...] = ()) -> list[BaseMessage]:
        """The answering context: persona + style as the system prompt, the history, the user's words.

        The persona opens every style's prompt, so its KV cache is shared (and saved at warm-up);
        consecutive turns in one style reuse the history too. Style text in the tool prompt would
        derail small models' tool calls, hence this second context.
        """
        return [SystemMessage(self.prompts.reply_prompt(style)), *self._history(), HumanMessage(text), *extra]

    def _answer(self, text: str, style: Style, sw: Stopwatch, prefix: str, sink: SentenceSink | None,
                cancel: threading.Event | None, extra: tuple[BaseMessage, ...] = ()) -> _Pass:
        """A spoken answer in ``style`` from the answering context (``extra``: a tool call and its result)."""
        return self._pass(self._reply_messages(text, style, extra), sw, prefix, sink, style.max_sentences,
                          cancel=cancel, llm=self._styled(style))

    def _styled(self, style: Style) -> Runnable:
        return self.styled_llms.get(style.family, self.reply_llm)

    def warm_up(self, state_dir: Path | None = None) -> dict[str, str]:
        """Evaluate the fixed prompts once so the first real turn starts warm.

        With ``state_dir`` (embedded backend) the warmed KV cache is saved there and later starts
        load it instead of evaluating the prompt again (agent.think.llm_state).
        """
        from agent.think.llm_state import warm

        def route() -> None:
            with contextlib.suppress(MMChatError):
                self.route("Hello there.")

        done = {"route": warm(self.llm, self._prompt_key(self._route_messages("")), route, state_dir)}
        families = sorted(self.styled_llms) or ["neutral"]
        for family in families:  # each answering context: persona + its style
            style = self.prompts.style(family)
            msgs = self._reply_messages("Hello there.", style)
            llm = self._styled(style)

            def reply(msgs: list[BaseMessage] = msgs, llm: Runnable = llm) -> None:
                with contextlib.suppress(MMChatError):
                    self._pass(msgs, Stopwatch(), "", None, 1, route_only=True, llm=llm)

            done[f"reply:{family}" if self.styled_llms else "reply"] = warm(llm, self._prompt_key(msgs), reply,
                                                                            state_dir)
        return done

    @staticmethod
    def _prompt_key(msgs: list[BaseMessage]) -> str:
        return json.dumps([[m.type, m.content] for m in msgs], ensure_ascii=False)

    # -- LLM pass -----------------------------------------------------------------
    def _stream(self, msgs: list[BaseMessage], llm: Runnable) -> Iterable[str]:
        try:
            for chunk in llm.stream(msgs):
                if isinstance(chunk.content, str) and chunk.content:
                    yield chunk.content
        except MMChatError:
            raise
        except ValueError as e:
            if "context window" in str(e) or "exceed" in str(e):
                raise LLMError("the conversation is too long for the model's context window",
                               ErrorCode.INPUT_TOO_LONG) from None
            raise LLMError(f"the language model failed: {e}") from None
        except Exception as e:  # network backends raise their own error types
            raise LLMError(f"the language model failed: {type(e).__name__}: {e}") from None

    def _pass(self, msgs: list[BaseMessage], sw: Stopwatch, prefix: str, sink: SentenceSink | None,
              max_sentences: int, route_only: bool = False, cancel: threading.Event | None = None,
              llm: Runnable | None = None) -> _Pass:
        """One streamed generation: speak sentences as they end, or collect a tool call."""
        p = _Pass()
        splitter = SentenceSplitter(first_words=self.settings.first_clause_words)

        def speak(sentences: list[str]) -> bool:
            for s in sentences:
                if len(p.spoken) - splitter.early >= max_sentences:
                    return False
                p.spoken.append(s)
                sw.mark(f"{prefix}first_sentence_s")
                if sink:
                    sink(s)
            return len(p.spoken) - splitter.early < max_sentences

        counter = PassCounter(llm or self.llm)
        for delta in self._stream(msgs, llm or self.llm):
            sw.mark(f"{prefix}first_token_s")
            p.raw += delta
            if cancel is not None and cancel.is_set():
                break
            if not p.kind:
                head = p.raw.lstrip()
                if not head or any(u.startswith(head) for u in _UNDECIDED):
                    continue
                p.kind = "call" if looks_like_call(head) else "text"
                if p.kind == "text" and route_only:
                    break
                if p.kind == "text" and not speak(splitter.feed(p.raw)):
                    break
                continue
            if p.kind == "call":
                continue
            if '{"name"' in p.raw:  # the model started a call after some words
                p.kind = "call"
                continue
            if not speak(splitter.feed(delta)):
                break
        if p.kind == "text" and not route_only:
            speak(splitter.flush())
        for k, v in counter.read().items():
            sw.timings[f"{prefix}{k}"] = sw.timings.get(f"{prefix}{k}", 0.0) + v
        return p

    # -- public API ------------------------------------------------------------------
    def route(self, text: str) -> ToolCall | None:
        """The tool the controller would call for ``text`` (no tool run, no reply)."""
        call, _ = self._decide(self._check(text), Stopwatch(), None, self.prompts.style("neutral"), None,
                               route_only=True)
        return call

    def style_cap(self, emotion: str | None = None) -> int:
        """The sentence cap of the style ``emotion`` selects (what ``respond`` uses by default)."""
        return self.prompts.style((emotion or self.settings.default_emotion).lower()).max_sentences

    def respond(self, text: str, emotion: str | None = None, on_sentence: SentenceSink | None = None,
                cancel: threading.Event | None = None, max_sentences: int | None = None) -> TurnResult:
        """Answer one utterance; sentences go to ``on_sentence`` as soon as they exist.

        ``max_sentences`` overrides the emotion style's sentence cap (None: the style's).
        """
        sw = Stopwatch()
        emotion = (emotion or self.settings.default_emotion).lower()
        style = self.prompts.style(emotion)
        if max_sentences is not None:
            style = replace(style, max_sentences=max(1, max_sentences))
        result = TurnResult(text=text, emotion=emotion)
        text = self._check(text)
        try:
            call, first = self._decide(text, sw, on_sentence, style, cancel)
        except ToolCallError as e:
            result.error = str(e)
            say = FALLBACK_GARBLED if isinstance(e, GarbledOutput) else FALLBACK_TOOL.format(problem=e)
            call, first = None, _Pass("text", spoken=self._say([say], on_sentence))
        spoken, memory = first.spoken, " ".join(first.spoken)
        if call is not None:
            spoken, memory = self._tool_turn(call, text, style, sw, result, on_sentence, cancel)
        elif not spoken and not (cancel and cancel.is_set()):
            result.error = result.error or "empty or unusable reply from the language model"
            spoken = self._say([FALLBACK_GARBLED], on_sentence)
        result.reply = " ".join(spoken)
        result.interrupted = bool(cancel and cancel.is_set())
        result.timings = sw.timings
        if self.settings.history_turns and memory:
            self.history.append((text, memory))
        return result

    def _decide(self, text: str, sw: Stopwatch, sink: SentenceSink | None, style: Style,
                cancel: threading.Event | None, route_only: bool = False) -> tuple[ToolCall | None, _Pass]:
        """Pick a tool (or none) and, for no tool, speak the answer.

        A confident semantic-router match calls its tool without an LLM pass.
        Otherwise the routing pass runs; for neutral style it streams its own
        answer (one pass, lowest latency), for other styles it stops at the
        first tokens and a styled pass answers (style text in the routing
        prompt makes small models stop calling tools). The router may veto or
        swap the LLM's choice among the argument-free tools.
        """
        intent = None
        if self.router is not None:
            with sw.stage("router_s"):
                intent = self.router.classify(text)
            direct = direct_call(intent, text, self.policy)
            if direct:
                return ToolCall(*direct), _Pass("call")
        plain = style.family == "neutral" and self.route_answers
        with sw.stage("llm_s"):
            first = self._pass(self._route_messages(text), sw, "llm_", sink if plain else None,
                               style.max_sentences, route_only=route_only or not plain, cancel=cancel)
        call = parse_tool_call(first.raw, self.schemas) if first.kind == "call" else None
        if first.kind == "call" and call is None:
            raise GarbledOutput("the language model wrote JSON that is not a tool call")
        if call is not None:
            verdict = arbitrate(call.name, intent, text, self.policy)
            if verdict is True:
                return call, first
            if verdict is not None:
                return ToolCall(*verdict), first
        if route_only or (first.kind == "text" and plain):
            return None, first
        with sw.stage("llm_s"):  # vetoed call, or a styled answer
            return None, self._answer(text, style, sw, "llm_", sink, cancel)

    # -- helpers -------------------------------------------------------------------
    def _check(self, text: str) -> str:
        text = " ".join((text or "").split())
        if not text:
            raise MMChatError("empty input: say or type something", ErrorCode.BAD_INPUT)
        if len(text) > self.settings.max_user_chars:
            raise MMChatError(f"input too long: {len(text)} characters (limit {self.settings.max_user_chars})",
                              ErrorCode.INPUT_TOO_LONG)
        return text

    @staticmethod
    def _say(sentences: list[str], sink: SentenceSink | None) -> list[str]:
        for s in sentences:
            if sink:
                sink(s)
        return sentences

    def _tool_turn(self, call: ToolCall, text: str, style: Style, sw: Stopwatch,
                   result: TurnResult, sink: SentenceSink | None,
                   cancel: threading.Event | None) -> tuple[list[str], str]:
        """Run the call, then phrase the answer from its result."""
        result.tool_calls.append(call)
        with sw.stage("tool_s"):
            try:
                out = json.loads(self.tools[call.name].invoke(call.args))
            except Exception as e:  # a tool must never take the assistant down
                out = {"ok": False, "summary": f"The {call.name} tool failed ({type(e).__name__})."}
        memory = self.prompts.call_text(call.name, call.args)
        summary = out.get("summary") or "Done."
        if not out.get("ok") or call.name == "set_mode":
            # Unavailable/failed results and mode switches are spoken as the tool
            # worded them: honest by construction and no second model pass.
            sw.mark("reply_first_sentence_s")
            return self._say([summary], sink), memory
        # The summary sentence carries the facts; the structured data (boxes,
        # scores) would cost hundreds of prompt tokens on a small CPU model.
        result_text = self.prompts.tool_result.format(name=call.name, result=summary)
        # Neutral: continue in the routing context, whose KV cache already holds the prompt and
        # the call (only the result is new). Styled: the answering context, persona + style.
        extra = (AIMessage(memory), HumanMessage(result_text))
        with sw.stage("reply_s"):
            if style.family == "neutral" and self.route_answers:
                second = self._pass([*self._route_messages(text), *extra], sw, "reply_", sink, style.max_sentences,
                                    cancel=cancel, llm=self.llm)
            else:
                second = self._answer(text, style, sw, "reply_", sink, cancel, extra)
        if second.kind != "text" or not second.spoken:
            return self._say([summary], sink), memory
        return second.spoken, memory

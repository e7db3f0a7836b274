"""Cut streamed LLM text into speakable sentences as soon as each one ends."""
from __future__ import annotations

import re

_END = re.compile(r"(?<!\b[A-Z])(?<!\bMr)(?<!\bMrs)(?<!\bDr)(?<!\bSt)(?<!\be\.g)(?<!\bi\.e)([.!?…]+[\"')\]]*)(\s+)")
_CLAUSE = re.compile(r"([,;:—])(\s+)")


class SentenceSplitter:
    """Feed text deltas; get back every sentence completed so far.

    A sentence ends at ``.``, ``!``, ``?`` or a newline followed by white space
    (not after a single capital or a common abbreviation). A very long sentence
    is cut at a clause boundary once it has ``max_words`` words, so speech can
    start before the model finishes it. The first piece of a reply may end at a
    clause boundary once it has ``first_words`` words: the user hears the start of
    the answer one clause sooner (the voice-to-voice latency).
    """

    def __init__(self, max_words: int = 18, first_words: int = 5) -> None:
        self.buf = ""
        self.max_words = max_words
        self.first_words = first_words
        self.started = False  # a piece has been handed out
        self.early = 0  # pieces cut early at a first clause (not sentences: caps do not count them)

    def feed(self, delta: str) -> list[str]:
        self.buf += delta
        out: list[str] = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            piece, self.buf = self.buf[:cut].strip(), self.buf[cut:]
            if piece:
                out.append(piece)
                self.started = True

    def _cut(self) -> int | None:
        nl = self.buf.find("\n")
        m = _END.search(self.buf)
        ends = [i for i in ((m.end(1) if m else None), (nl + 1 if nl >= 0 else None)) if i is not None]
        if ends:
            return min(ends)
        if not self.started:  # the first clause with enough words
            for c in _CLAUSE.finditer(self.buf):
                if len(self.buf[:c.start()].split()) >= self.first_words:
                    self.early += 1
                    return c.end(1)
        if len(self.buf.split()) >= self.max_words:
            last = None
            for last in _CLAUSE.finditer(self.buf):
                pass
            if last is not None:
                return last.end(1)
        return None

    def flush(self) -> list[str]:
        rest, self.buf, self.started = self.buf.strip(), "", False
        return [rest] if rest else []

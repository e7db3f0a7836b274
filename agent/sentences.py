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
    start before the model finishes it.
    """

    def __init__(self, max_words: int = 18) -> None:
        self.buf = ""
        self.max_words = max_words

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

    def _cut(self) -> int | None:
        nl = self.buf.find("\n")
        m = _END.search(self.buf)
        ends = [i for i in ((m.end(1) if m else None), (nl + 1 if nl >= 0 else None)) if i is not None]
        if ends:
            return min(ends)
        if len(self.buf.split()) >= self.max_words:
            c = None
            for c in _CLAUSE.finditer(self.buf):
                pass
            if c is not None:
                return c.end(1)
        return None

    def flush(self) -> list[str]:
        rest, self.buf = self.buf.strip(), ""
        return [rest] if rest else []

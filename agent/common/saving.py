"""Run outputs (reply audio, events, the run folder) written whole or not at all.

A file is written to a hidden ``.<name>.part`` beside it and renamed into place, so a full disk (or a
crash) never leaves a truncated WAV or JSON for a later run to trip over: the ``.part`` is removed and
a ``StorageError`` (code ``storage-failed``, one line naming the file and the cause) is raised instead.
"""
from __future__ import annotations

import os
from pathlib import Path

from tools.common.errors import ErrorCode, MMChatError


class StorageError(MMChatError):
    code = ErrorCode.STORAGE


def _failed(what: Path, e: OSError) -> StorageError:
    return StorageError(f"could not save {what} ({e.strerror or e})")


def write_whole(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename); StorageError if that fails."""
    p = Path(path)
    part = p.with_name(f".{p.name}.part")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, p)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise _failed(p, e) from None
    return p


def fresh_dir(path: Path) -> Path:
    """Create ``path`` (``path-2``, ``-3``, ... when it exists: a run never writes into another's folder)."""
    for n in range(1, 1000):
        d = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            d.mkdir(parents=True)
            return d
        except FileExistsError:
            continue
        except OSError as e:
            raise _failed(d, e) from None
    raise StorageError(f"could not create a fresh folder beside {path}")

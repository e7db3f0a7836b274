"""User profiles on disk: embeddings and preferences only, never raw audio or images.

Layout (folder 0700, files 0600)::

    <profiles>/<NAME>/voice.npy     (n, 192) unit voice embeddings, one per sample
    <profiles>/<NAME>/face.npy      (n, 128) face encodings, one per photo
    <profiles>/<NAME>/profile.json  preferences, models used, sample counts
    <profiles>/<NAME>/key.json      optional passphrase: salt + per-word scrypt digests (phrase.py)

A save writes the whole new profile into ``.<NAME>.new/`` (fsynced), renames the
current folder to ``.<NAME>.old/``, renames the new one into place and deletes the
old one. A crash at any point leaves either the old or the new profile: an
interrupted swap is undone on the next access (``.old`` restored, ``.new`` dropped).
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from agent.identity.preferences import Preferences
from tools.common.errors import ErrorCode, MMChatError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VOICE_DIM, FACE_DIM = 192, 128


class ProfileError(MMChatError):
    code = ErrorCode.PROFILE


@dataclass
class Profile:
    name: str
    voice: np.ndarray = field(default_factory=lambda: np.zeros((0, VOICE_DIM), np.float32))
    face: np.ndarray = field(default_factory=lambda: np.zeros((0, FACE_DIM), np.float64))
    prefs: dict = field(default_factory=dict)
    key: dict | None = None  # the passphrase record (agent.identity.phrase.PhraseKey.as_json), never the text

    def as_json(self) -> dict:
        return {"user": self.name, "voice_samples": len(self.voice), "face_samples": len(self.face),
                "passphrase": self.key is not None}


def check_name(name: str) -> str:
    """A profile name usable as a folder name: letters, digits, '_', '-', '.'; max 64."""
    if not NAME_RE.fullmatch(name or ""):
        raise ProfileError(f"invalid profile name {name!r}: use letters, digits, '_', '-', '.' "
                           "(start with a letter or digit, at most 64)")
    return name


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data`` durably (flush + fsync)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


class ProfileStore:
    """Profiles under one folder (``settings.path(settings.paths.profiles)``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive lock on the profiles folder (saves and crash recovery)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _dir(self, name: str) -> Path:
        """The profile folder, after undoing any interrupted save of it."""
        d = self.root / check_name(name)
        if d.with_name(f".{name}.old").is_dir() or d.with_name(f".{name}.new").is_dir():
            with self._locked():
                self._recover(d)
        return d

    @staticmethod
    def _recover(d: Path) -> None:
        new, old = d.with_name(f".{d.name}.new"), d.with_name(f".{d.name}.old")
        if old.is_dir():
            if d.is_dir():  # crashed after the swap: the new profile is complete
                shutil.rmtree(old)
            else:  # crashed mid-swap: restore the previous profile
                os.rename(old, d)
        if new.is_dir():  # crashed while writing: discard the partial new profile
            shutil.rmtree(new)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = {p.name[1:-4] for p in self.root.glob(".*.old")} | {p.name for p in self.root.iterdir()}
        return sorted(n for n in names if NAME_RE.fullmatch(n) and (self._dir(n) / "profile.json").is_file())

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "profile.json").is_file()

    def load(self, name: str) -> Profile:
        d = self._dir(name)
        if not (d / "profile.json").is_file():
            raise ProfileError(f"unknown user {name!r}")
        try:
            prefs = json.loads((d / "profile.json").read_text())
            voice = np.load(d / "voice.npy", allow_pickle=False) if (d / "voice.npy").is_file() else None
            face = np.load(d / "face.npy", allow_pickle=False) if (d / "face.npy").is_file() else None
            key = json.loads((d / "key.json").read_text()) if (d / "key.json").is_file() else None
        except (OSError, ValueError) as e:
            raise ProfileError(f"profile {name!r} is unreadable ({type(e).__name__}); re-enrol it") from None
        p = Profile(name, prefs=prefs.get("preferences", {}), key=key)
        if voice is not None:
            p.voice = voice.reshape(-1, VOICE_DIM)
        if face is not None:
            p.face = face.reshape(-1, FACE_DIM)
        return p

    def load_all(self) -> list[Profile]:
        return [self.load(n) for n in self.names()]

    def save(self, profile: Profile, models: dict[str, str] | None = None) -> None:
        """Replace a profile as a whole (see the module docstring)."""
        with self._locked():
            d = self.root / check_name(profile.name)
            self._recover(d)
            try:
                self._swap_in(d, profile, models)
            except BaseException as e:
                self._recover(d)  # put the previous profile back at once
                if isinstance(e, OSError):  # e.g. the disk is full: a clear refusal, the old profile kept
                    raise ProfileError(f"could not save profile {profile.name!r} ({e.strerror or e}); "
                                       "the previous one is kept") from None
                raise

    @staticmethod
    def _swap_in(d: Path, profile: Profile, models: dict[str, str] | None) -> None:
        new, old = d.with_name(f".{d.name}.new"), d.with_name(f".{d.name}.old")
        new.mkdir(mode=0o700)
        os.chmod(new, 0o700)
        write_private(new / "voice.npy", _npy_bytes(np.asarray(profile.voice, np.float32)))
        write_private(new / "face.npy", _npy_bytes(np.asarray(profile.face, np.float64)))
        meta = {"name": profile.name, "preferences": profile.prefs, "models": models or {},
                "voice_samples": len(profile.voice), "face_samples": len(profile.face),
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_private(new / "profile.json", json.dumps(meta, indent=2).encode())
        if profile.key is not None:
            write_private(new / "key.json", json.dumps(profile.key).encode())
        if d.is_dir():
            os.rename(d, old)
        os.rename(new, d)
        _fsync_dir(d.parent)
        if old.is_dir():
            shutil.rmtree(old)

    def enroll(self, name: str, voice: list[np.ndarray], face: list[np.ndarray],
               models: dict[str, str] | None = None, prefs: dict | None = None,
               key: dict | None = None) -> Profile:
        """Add embeddings (and preference updates, a new passphrase ``key``) to a profile, created if new;
        one atomic save."""
        check_name(name)
        p = self.load(name) if self.exists(name) else Profile(name, prefs=default_prefs(name))
        p.prefs = {**default_prefs(name), **p.prefs, **(prefs or {})}
        if voice:
            p.voice = np.vstack([p.voice, np.stack(voice).reshape(-1, VOICE_DIM)]).astype(np.float32)
        if face:
            p.face = np.vstack([p.face, np.stack(face).reshape(-1, FACE_DIM)])
        if key is not None:
            p.key = key
        self.save(p, models)
        return p

    def remove(self, name: str) -> None:
        d = self._dir(name)
        if not d.is_dir():
            raise ProfileError(f"unknown user {name!r}")
        shutil.rmtree(d)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_prefs(name: str) -> dict:
    """Preferences of a new profile (``enroll NAME --address-as/--reply-length/--tts-voice`` change them)."""
    return Preferences(name).as_dict()

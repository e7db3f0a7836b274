"""``profiles sync DIR``: enrol faces from ``DIR/<name>/*.jpg|png|...`` and retrain only when the folder changed.

A person's folder is hashed (file names + SHA-256 of their bytes); the hashes of the
last sync live in ``<profiles>/.face_sync.json`` (0600, per synced folder; no photos,
no paths outside DIR). Per person:

* new folder -> profile created (or an existing voice-only profile gains faces): ``added``
* changed folder -> its face encodings replaced by the folder's photos (photos seen
  before are not embedded again): ``updated``
* folder gone -> the person's face data dropped (a profile left with nothing else, i.e. no
  voice, no passphrase, default preferences, is deleted): ``removed``
* same hash -> nothing read, nothing embedded: ``unchanged``

Photos with no face, several faces or undecodable bytes are ``skipped`` with the reason.
A sync never touches voice samples or preferences, and never copies a photo. The
classifier (face_classifier.py) is retrained only if the encodings changed.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from agent.identity.face_classifier import ClassifierCache
from agent.identity.faces import FaceEncoder, FaceError, read_image
from agent.identity.profiles import FACE_DIM, NAME_RE, Profile, ProfileStore, default_prefs, write_private
from tools.common.errors import ErrorCode, MMChatError

if TYPE_CHECKING:
    from agent.common.config import FaceIdSettings, Settings

log = logging.getLogger(__name__)
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MANIFEST = ".face_sync.json"


@dataclass
class SyncReport:
    dir: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {file, reason}
    retrained: bool = False
    embedded: int = 0  # photos run through the face model in this sync
    classifier: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"dir": self.dir, "added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "skipped": self.skipped, "retrained": self.retrained,
                "embedded": self.embedded, "classifier": self.classifier}


@dataclass
class PersonFolder:
    name: str
    photos: list[tuple[str, str]]  # (file name, sha256), sorted

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.photos).encode()).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan_folder(root: Path, report: SyncReport) -> list[PersonFolder]:
    """Every ``root/<name>/`` with its photos; bad folder names are reported in ``skipped``."""
    people = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not NAME_RE.fullmatch(d.name):
            report.skipped.append({"file": f"{d.name}/", "reason": "folder name is not a valid profile name "
                                   "(letters, digits, '_', '-', '.'; at most 64)"})
            continue
        photos = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in IMAGE_EXT)
        people.append(PersonFolder(d.name, [(p.name, _sha(p)) for p in photos]))
    return people


class FaceSync:
    """Synchronises one ProfileStore's face data with photo folders."""

    def __init__(self, store: ProfileStore, cfg: "FaceIdSettings", encoder: Callable[[], FaceEncoder],
                 models: dict[str, str] | None = None) -> None:
        self.store, self.cfg, self.models = store, cfg, models or {}
        self._make_encoder = encoder
        self._encoder: FaceEncoder | None = None
        self.manifest_path = store.root / MANIFEST

    @classmethod
    def from_settings(cls, settings: "Settings") -> "FaceSync":
        from agent.identity.faces import DlibFaceEncoder

        store = ProfileStore(settings.path(settings.paths.profiles))
        return cls(store, settings.face_id, lambda: DlibFaceEncoder(settings.identity.face_upsample),
                   {"face": DlibFaceEncoder.name})

    @property
    def encoder(self) -> FaceEncoder:
        if self._encoder is None:
            self._encoder = self._make_encoder()
        return self._encoder

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.store.root / ".face_sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text())
            return data if isinstance(data, dict) and isinstance(data.get("dirs"), dict) else {"dirs": {}}
        except FileNotFoundError:
            return {"dirs": {}}
        except (OSError, ValueError):
            log.warning("%s unreadable: every folder is embedded again", self.manifest_path)
            return {"dirs": {}}

    def _save_manifest(self, data: dict[str, Any]) -> None:
        tmp = self.manifest_path.with_name(MANIFEST + ".tmp")
        write_private(tmp, json.dumps(data, indent=1).encode())
        os.replace(tmp, self.manifest_path)

    def sync(self, folder: str | Path) -> SyncReport:
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise MMChatError(f"faces folder not found: {folder}", ErrorCode.BAD_INPUT)
        report = SyncReport(str(root))
        with self._locked():
            manifest = self._manifest()
            known: dict[str, Any] = manifest["dirs"].get(str(root), {})
            people = scan_folder(root, report)
            now: dict[str, Any] = {}
            for person in people:
                now[person.name] = self._sync_person(person, known.get(person.name), report)
            for name in sorted(set(known) - {p.name for p in people}):
                self._set_faces(name, None, report, gone=True)
            manifest["dirs"][str(root)] = now
            self._save_manifest(manifest)
        clf, report.retrained = ClassifierCache(self.store, self.cfg).get()
        report.classifier = clf.as_json()
        return report

    def _sync_person(self, person: PersonFolder, prev: dict[str, Any] | None, report: SyncReport) -> dict[str, Any]:
        """Bring one person's face data in line with their folder; returns their new manifest entry."""
        profile = self.store.load(person.name) if self.store.exists(person.name) else None
        prev = prev or {}
        stored_rows = prev.get("files", [])
        aligned = (len(profile.face) if profile is not None else 0) == len(stored_rows)
        if prev.get("hash") == person.digest and aligned:
            report.unchanged.append(person.name)
            report.skipped += [{"file": f"{person.name}/{f}", "reason": r} for f, _, r in prev.get("skipped", [])]
            return prev
        reuse = {sha: profile.face[i] for i, (_, sha) in enumerate(stored_rows)} if aligned and profile else {}
        bad_before = {sha: reason for _, sha, reason in prev.get("skipped", [])}
        rows: list[list[str]] = []
        encs: list[np.ndarray] = []
        bad: list[list[str | None]] = []
        for fname, sha in person.photos:
            if sha in reuse:
                enc, reason = reuse[sha], None
            elif sha in bad_before:
                enc, reason = None, bad_before[sha]
            else:
                enc, reason = self._embed(Path(report.dir) / person.name / fname)
                report.embedded += 1
            if enc is None:
                bad.append([fname, sha, reason])
                report.skipped.append({"file": f"{person.name}/{fname}", "reason": str(reason)})
            else:
                rows.append([fname, sha])
                encs.append(enc)
        if not encs:
            if not person.photos:
                report.skipped.append({"file": f"{person.name}/", "reason": "no photos (jpg, png, ...)"})
            if len(stored_rows):  # had synced faces: now none are usable
                self._set_faces(person.name, None, report, gone=True)
            return {"hash": person.digest, "files": [], "skipped": bad}  # bad photos are not embedded again
        self._set_faces(person.name, np.stack(encs), report, gone=False)
        return {"hash": person.digest, "files": rows, "skipped": bad}

    def _set_faces(self, name: str, faces: np.ndarray | None, report: SyncReport, gone: bool) -> None:
        """Replace a profile's face encodings (voice and preferences kept); create it if new."""
        existed = self.store.exists(name)
        p = self.store.load(name) if existed else Profile(name, prefs=default_prefs(name))
        had_faces = len(p.face) > 0
        if faces is None and not had_faces:
            return
        p.face = np.zeros((0, FACE_DIM)) if faces is None else faces
        if faces is None and not len(p.voice) and p.prefs == default_prefs(name) and not getattr(p, "key", None):
            self.store.remove(name)  # the profile held nothing but these faces
        else:
            self.store.save(p, self.models)
        if gone:
            report.removed.append(name)
        else:
            (report.updated if existed and had_faces else report.added).append(name)

    def _embed(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        """(encoding, None) for a photo of exactly one face, else (None, why)."""
        import cv2

        try:
            rgb = read_image(path)
        except FaceError as e:
            return None, str(e).replace(f"{path}: ", "")
        side = max(rgb.shape[:2])
        if side > self.cfg.max_photo_side:
            s = self.cfg.max_photo_side / side
            rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        scan = self.encoder.scan(rgb)
        if scan.status == "no_face":
            return None, "no face found"
        if scan.status == "multiple_faces":
            return None, f"{len(scan.boxes)} faces found; a photo must show only this person"
        return scan.encodings[0], None

    def forget(self, name: str) -> None:
        """After ``profiles remove NAME``: drop the person from the sync records and the classifier."""
        with self._locked():
            manifest = self._manifest()
            for people in manifest["dirs"].values():
                people.pop(name, None)
            if self.manifest_path.exists():
                self._save_manifest(manifest)
        ClassifierCache(self.store, self.cfg).get()  # retrained without them (no file if nobody is left)


def sync_configured(settings: "Settings") -> SyncReport | None:
    """Sync ``session.face.sync_dir`` (start of ``run`` and ``serve``); None when it is not set."""
    if not settings.session.face.sync_dir:
        return None
    report = FaceSync.from_settings(settings).sync(settings.path(settings.session.face.sync_dir))
    log.info("faces synced from %s: %d added, %d updated, %d removed, %d unchanged, %d skipped, retrained=%s",
             report.dir, len(report.added), len(report.updated), len(report.removed), len(report.unchanged),
             len(report.skipped), report.retrained)
    return report

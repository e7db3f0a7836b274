"""Who is this face: a class-balanced classifier over the enrolled 128-d encodings, with "unknown" rejection.

``FaceClassifier.train`` fits scikit-learn's ``SVC(class_weight="balanced")`` (or a
distance-weighted kNN, ``face_id.classifier``) on every profile's face encodings and
picks its parameters by ``StratifiedKFold`` cross-validation (balanced accuracy) when
every person has at least two photos; otherwise it keeps the defaults (a linear SVM,
C=1 / 1-NN). A face gets the predicted name only if its distance to that person's
nearest enrolled encoding is within ``face_id.max_distance`` (dlib's 0.6 rule), so a
stranger, whom any classifier would assign to *someone*, comes out unknown.

``ClassifierCache`` stores the trained model next to the profiles (``.face_classifier.pkl``,
0600) with the hash of the encodings and settings it was trained on, and loads it
again while that hash is unchanged.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.identity.profiles import ProfileStore, write_private
from tools.common.errors import MMChatError

if TYPE_CHECKING:
    from agent.common.config import Settings
    from tools.common.settings import FaceIdSettings
    from tools.vision.who import FaceNamer

log = logging.getLogger(__name__)
CLASSIFIER_FILE = ".face_classifier.pkl"
FORMAT = 1  # bump when FaceClassifier's fields change
SVM_GRID: dict[str, list[Any]] = {"kernel": ["linear", "rbf"], "C": [0.1, 1.0, 10.0, 100.0]}
KNN_GRID: dict[str, list[Any]] = {"n_neighbors": [1, 3, 5]}


@dataclass(frozen=True)
class FaceMatch:
    """One face: the accepted ``user`` (None: unknown), the closest person and how close."""

    user: str | None
    closest: str | None  # the classifier's choice, accepted or not
    distance: float | None  # to ``closest``'s nearest enrolled encoding

    @property
    def score(self) -> float | None:
        """``1 - distance`` in [0, 1] (higher = closer; accepted at >= 1 - max_distance)."""
        return None if self.distance is None else round(max(0.0, 1.0 - self.distance), 4)


@dataclass
class FaceClassifier:
    """Names, their encodings and the fitted model (None with fewer than two people)."""

    names: list[str]
    X: np.ndarray  # (n, 128)
    y: np.ndarray  # (n,) index into names
    kind: str
    max_distance: float
    model: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, Any] | None = None  # {folds, balanced_accuracy} when parameters were cross-validated

    @classmethod
    def train(cls, faces: dict[str, np.ndarray], cfg: "FaceIdSettings") -> "FaceClassifier":
        """Fit on ``{name: (n_i, 128) encodings}`` (people without encodings are left out)."""
        names = sorted(n for n, e in faces.items() if len(e))
        X = np.vstack([faces[n] for n in names]).astype(np.float64) if names else np.zeros((0, 128))
        y = np.concatenate([np.full(len(faces[n]), i) for i, n in enumerate(names)]) if names else np.zeros(0, int)
        clf = cls(names, X, y.astype(int), cfg.classifier, cfg.max_distance)
        if len(names) >= 2:
            clf._fit(cfg.cv_folds)
        return clf

    def _fit(self, max_folds: int) -> None:
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.svm import SVC

        if self.kind == "svm":
            base, grid, default = SVC(class_weight="balanced"), SVM_GRID, {"kernel": "linear", "C": 1.0}
        else:
            base, grid, default = KNeighborsClassifier(weights="distance"), KNN_GRID, {"n_neighbors": 1}
        folds = min(max_folds, int(np.bincount(self.y).min()))
        if folds >= 2:
            if self.kind == "knn":  # a neighbour count above the smallest training fold is meaningless
                smallest = int(np.bincount(self.y).min()) * (folds - 1) // folds
                grid = {"n_neighbors": [k for k in KNN_GRID["n_neighbors"] if k <= max(smallest, 1)]}
            search = GridSearchCV(base, grid, scoring="balanced_accuracy",
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=0))
            search.fit(self.X, self.y)
            self.model, self.params = search.best_estimator_, dict(search.best_params_)
            self.cv = {"folds": folds, "balanced_accuracy": round(float(search.best_score_), 4)}
        else:  # someone has a single photo: nothing to validate on
            self.model, self.params = base.set_params(**default).fit(self.X, self.y), default

    def predict(self, encodings: np.ndarray) -> list[FaceMatch]:
        """A FaceMatch per row of ``encodings``."""
        encodings = np.asarray(encodings, np.float64).reshape(-1, 128)
        if not self.names or not len(encodings):
            return [FaceMatch(None, None, None) for _ in encodings]
        labels = self.model.predict(encodings) if self.model is not None else np.zeros(len(encodings), int)
        out = []
        for enc, label in zip(encodings, labels):
            d = float(np.min(np.linalg.norm(self.X[self.y == label] - enc, axis=1)))
            name = self.names[int(label)]
            out.append(FaceMatch(name if d <= self.max_distance else None, name, d))
        return out

    def as_json(self) -> dict[str, Any]:
        return {"classifier": self.kind, "people": len(self.names), "encodings": len(self.X),
                "params": self.params, "cv": self.cv, "max_distance": self.max_distance}


def training_hash(faces: dict[str, np.ndarray], cfg: "FaceIdSettings") -> str:
    """What a trained classifier depends on: every name's encodings, the classifier settings, the format
    version and scikit-learn's version (an upgrade retrains rather than unpickling an old model)."""
    import sklearn

    h = hashlib.sha256(f"{FORMAT}|{sklearn.__version__}|{cfg.classifier}|{cfg.cv_folds}|{cfg.max_distance}".encode())
    for name in sorted(faces):
        if len(faces[name]):
            h.update(name.encode() + b"\0")
            h.update(np.ascontiguousarray(faces[name], np.float64).tobytes())
    return h.hexdigest()


class ClassifierCache:
    """The classifier of one ProfileStore: loaded from disk while its training data is unchanged."""

    def __init__(self, store: ProfileStore, cfg: "FaceIdSettings") -> None:
        self.store, self.cfg = store, cfg
        self.path = store.root / CLASSIFIER_FILE

    def faces(self) -> dict[str, np.ndarray]:
        return {p.name: p.face for p in self.store.load_all() if len(p.face)}

    def get(self) -> tuple[FaceClassifier, bool]:
        """(classifier, retrained): the stored one if its hash matches the profiles, else a fresh fit (saved)."""
        faces = self.faces()
        digest = training_hash(faces, self.cfg)
        stored = self._read()
        if stored is not None and stored.get("hash") == digest:
            return stored["classifier"], False
        clf = FaceClassifier.train(faces, self.cfg)
        self._write(digest, clf)
        return clf, True

    def _read(self) -> dict[str, Any] | None:
        """The stored entry, if the file is ours and private (a pickle is only loaded from a 0600 file)."""
        try:
            st = self.path.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                log.warning("%s is not private to this user: ignored (retraining)", self.path)
                return None
            data = pickle.loads(self.path.read_bytes())  # noqa: S301 - our own 0600 file in the 0700 profiles dir
            return data if isinstance(data, dict) and isinstance(data.get("classifier"), FaceClassifier) else None
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 - a damaged cache is retrained, never fatal
            log.warning("face classifier cache unreadable (%s): retraining", type(e).__name__)
            return None

    def _write(self, digest: str, clf: FaceClassifier) -> None:
        if not clf.names:  # nobody enrolled with a face: keep no classifier data at all
            self.path.unlink(missing_ok=True)
            return
        buf = io.BytesIO()
        pickle.dump({"hash": digest, "classifier": clf}, buf, protocol=pickle.HIGHEST_PROTOCOL)
        self.store.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # a temp name per writer: sessions starting together each train and replace atomically
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            write_private(tmp, buf.getvalue())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


def face_namer(settings: "Settings", video: bool) -> "FaceNamer | None":
    """A namer over the enrolled faces for the camera stage; None (logged) when the profiles cannot be read."""
    from agent.identity.faces import DlibFaceEncoder
    from tools.vision.who import FaceNamer

    store = ProfileStore(settings.path(settings.paths.profiles))
    try:
        clf, _ = ClassifierCache(store, settings.face_id).get()
    except MMChatError as e:  # e.g. an unreadable profile: faces stay unnamed, perception goes on
        log.warning("faces will not be named: %s", e)
        return None
    return FaceNamer(clf, None, settings.face_id, video, make_encoder=DlibFaceEncoder)

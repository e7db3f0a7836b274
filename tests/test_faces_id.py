"""Who is in the room, on the shared faces: folder sync, the balanced classifier, naming in perceive and the
camera stage, describe_scene, routing. Real dlib/MediaPipe models; the fakes below only test plumbing."""
from __future__ import annotations

import json
import shutil
import stat

import numpy as np
import pytest

from agent.common.config import load_settings, replaced
from agent.evals.faces_id import augment, labelled_probes, quality
from agent.identity.face_classifier import CLASSIFIER_FILE, FaceClassifier
from agent.identity.face_sync import MANIFEST, FaceSync
from agent.identity.faces import DlibFaceEncoder, read_image
from agent.identity.profiles import ProfileStore
from tests.conftest import ROOT, TESTDATA

ENROLL, PROBE = TESTDATA / "faces" / "enroll", TESTDATA / "faces" / "probe"
PEOPLE = ["alex_lacamoire", "biden", "kit_harington", "lin_manuel_miranda", "obama", "rose_leslie"]


def small(path, side: int = 640) -> np.ndarray:
    """A photo downscaled to at most ``side`` pixels (quicker HOG on the augmented copies)."""
    import cv2

    rgb = read_image(path)
    s = min(1.0, side / max(rgb.shape[:2]))
    return cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)


class CountingEncoder:
    """The real dlib encoder, counting the photos it scans."""

    name = DlibFaceEncoder.name

    def __init__(self, real: DlibFaceEncoder) -> None:
        self.real, self.scans = real, 0

    def scan(self, rgb):  # noqa: ANN001, ANN201
        self.scans += 1
        return self.real.scan(rgb)


@pytest.fixture(scope="module")
def encoder():
    return DlibFaceEncoder()


@pytest.fixture(scope="module")
def synced(tmp_path_factory, encoder):
    """The shared enrol folders synced into a fresh profiles folder: (settings, store, first report)."""
    root = tmp_path_factory.mktemp("faces_id")
    settings = load_settings(ROOT / "config.yaml", {"paths": {"profiles": str(root / "profiles")}})
    store = ProfileStore(root / "profiles")
    counting = CountingEncoder(encoder)
    report = FaceSync(store, settings.face_id, lambda: counting).sync(ENROLL)
    return settings, store, report, counting


@pytest.fixture(scope="module")
def enrolled(synced):
    return {p.name: p.face for p in synced[1].load_all()}


def test_sync_enrols_the_shared_folders_and_a_second_sync_does_nothing(synced, encoder):
    settings, store, first, counting = synced
    assert first.added == PEOPLE and first.retrained and first.skipped == []
    assert counting.scans == first.embedded == 7
    again = CountingEncoder(encoder)
    second = FaceSync(store, settings.face_id, lambda: again).sync(ENROLL)
    assert second.unchanged == PEOPLE and not (second.added or second.updated or second.removed)
    assert not second.retrained and second.embedded == 0 and again.scans == 0
    for f in (store.root / CLASSIFIER_FILE, store.root / MANIFEST):  # private, and no photo was copied
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not [p for p in store.root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]


def test_classifier_reloads_while_unchanged_and_refuses_a_shared_file(synced):
    from agent.identity.face_classifier import ClassifierCache

    settings, store = synced[0], synced[1]
    cache = ClassifierCache(store, settings.face_id)
    clf, retrained = cache.get()
    assert not retrained and clf.names == PEOPLE
    cache.path.chmod(0o644)  # not private any more: never unpickled, retrained and written 0600 again
    assert cache.get()[1] and stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    cache.path.write_bytes(b"garbage")
    cache.path.chmod(0o600)
    assert cache.get()[1] and not cache.get()[1]


def test_session_face_sync_dir_is_synced_at_start(synced):
    from agent.identity.face_sync import sync_configured

    settings = synced[0]
    assert sync_configured(settings) is None  # not configured: nothing happens
    cfg = replaced(settings, "session.face", sync_dir=str(ENROLL))
    report = sync_configured(cfg)
    assert report.unchanged == PEOPLE and not report.retrained and report.embedded == 0


def test_perceive_names_obama_and_biden_in_two_people(synced, capsys, tmp_path):
    from agent.app.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {synced[1].root}\n")
    assert main(["perceive", "--image", str(PROBE / "two_people.jpg"), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    faces = sorted(out["frames"][0]["faces"], key=lambda f: f["box"][0])
    assert [f["user"] for f in faces] == ["obama", "biden"]  # Obama stands on the left
    assert all(0.4 <= f["user_score"] <= 1.0 for f in faces)
    assert out["summary"].startswith("Biden and Obama are here.")


def test_hamilton_clip_names_stay_on_tracks(synced):
    """Every 2nd frame of the clip through the camera stage's processor: Lin-Manuel Miranda (on stage) and
    Alex Lacamoire (at the piano, close-up) are named, nobody else enrolled is, and names ride on tracks."""
    from agent.session.perception import build_frame_processor
    from tools.vision.images import read_video

    settings = synced[0]
    processor = build_frame_processor(settings, video=True)
    _, frames = read_video(str(PROBE / "short_hamilton_clip.mp4"), None)
    names: dict[int, set] = {}
    for i, (t, frame) in enumerate(frames):
        if i % 2:
            continue
        for f in processor.process(frame, t=t).faces:
            if f["user"]:
                names.setdefault(i, set()).add(f["user"])
    seen = set().union(*names.values())
    assert {"lin_manuel_miranda", "alex_lacamoire"} <= seen <= {"lin_manuel_miranda", "alex_lacamoire", "obama"}
    assert all(n == {"lin_manuel_miranda"} for i, n in names.items() if 120 <= i <= 200)  # Lin alone on stage
    assert sum(1 for i in range(120, 201, 2) if i in names) >= 30  # named on most of those frames
    assert processor.namer.recognised < 60  # recognised on new tracks and re-checks, not on all ~100 faces


def test_imbalance_many_photos_do_not_swallow_one(encoder, enrolled):
    """Obama from 20 photos (flips/crops/brightness of one), Biden from one: both named in two_people.jpg;
    an SVC without class balancing gives Biden's face to Obama."""
    from sklearn.svm import SVC

    cfg = load_settings(ROOT / "config.yaml").face_id
    many = [s.encodings[0] for s in (encoder.scan(im) for im in augment(small(ENROLL / "obama" / "obama.jpg"), 20))
            if s.status == "ok"]
    assert len(many) >= 15
    train = {**enrolled, "obama": np.array(many)}
    two = labelled_probes(load_settings(ROOT / "config.yaml"), encoder)[:2]  # obama, biden
    for kind in ("svm", "knn"):
        got = [m.user for m in FaceClassifier.train(train, cfg.model_copy(update={"classifier": kind}))
               .predict(np.array([e for _, e in two]))]
        assert got == ["obama", "biden"], kind
    clf = FaceClassifier.train(train, cfg)
    plain = SVC(kernel="linear").fit(clf.X, clf.y)
    assert clf.names[int(plain.predict(two[1][1][None])[0])] == "obama"  # the imbalance is real


def test_parameters_are_cross_validated_when_everyone_has_two_photos(encoder, enrolled):
    cfg = load_settings(ROOT / "config.yaml").face_id
    biden = [s.encodings[0] for s in (encoder.scan(im) for im in augment(small(ENROLL / "biden" / "biden.jpg"), 3))
             if s.status == "ok"]
    clf = FaceClassifier.train({"obama": enrolled["obama"], "biden": np.array(biden)}, cfg)
    assert clf.cv is not None and clf.cv["folds"] == 2 and set(clf.params) == {"kernel", "C"}


def test_strangers_come_out_unknown_leave_one_person_out(encoder, enrolled):
    settings = load_settings(ROOT / "config.yaml")
    q = quality(settings, settings.face_id.classifier, encoder, enrolled)
    assert q["probe_accuracy"] == 1.0 and q["false_accepts"] == 0, q["errors"]
    assert q["stranger_trials"] >= 15


def test_sync_skips_bad_photos_keeps_voice_and_prefs_and_remove_drops_classifier_data(tmp_path, encoder, capsys):
    from agent.app.cli import main

    faces = tmp_path / "faces"
    shutil.copytree(ENROLL / "obama", faces / "obama")
    shutil.copytree(ENROLL / "biden", faces / "biden")
    (faces / "obama" / "corrupt.jpg").write_bytes(b"not an image")
    shutil.copy(TESTDATA / "scenes" / "fruits.jpg", faces / "obama" / "fruit.jpg")
    shutil.copy(PROBE / "two_people.jpg", faces / "obama" / "both.jpg")
    (faces / "bad name").mkdir()
    store = ProfileStore(tmp_path / "profiles")
    voice = np.ones((1, 192), np.float32) / np.sqrt(192)
    store.enroll("biden", [voice[0]], [], prefs={"address_as": "Joe"})
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  profiles: {store.root}\n")
    run = lambda *a: (main([*a, "--config", str(cfg), "--json"]), json.loads(capsys.readouterr().out))  # noqa: E731
    code, r = run("profiles", "sync", str(faces))
    assert code == 0 and r["added"] == ["biden", "obama"] and r["retrained"]
    reasons = {s["file"]: s["reason"] for s in r["skipped"]}
    assert set(reasons) == {"bad name/", "obama/corrupt.jpg", "obama/fruit.jpg", "obama/both.jpg"}
    assert reasons["obama/fruit.jpg"] == "no face found" and reasons["obama/both.jpg"].startswith("2 faces")
    assert "readable" in reasons["obama/corrupt.jpg"] and str(tmp_path) not in reasons["obama/corrupt.jpg"]
    b = store.load("biden")
    assert len(b.face) == 1 and np.allclose(b.voice, voice) and b.prefs["address_as"] == "Joe"
    shutil.rmtree(faces / "biden")
    (faces / "obama" / "fruit.jpg").unlink()
    code, r = run("profiles", "sync", str(faces))
    assert r["removed"] == ["biden"] and r["updated"] == ["obama"] and r["embedded"] == 0 and r["retrained"]
    b = store.load("biden")  # voice and preferences survive the face data
    assert len(b.face) == 0 and np.allclose(b.voice, voice) and b.prefs["address_as"] == "Joe"
    assert r["classifier"]["people"] == 1
    code, r = run("profiles", "remove", "obama")
    assert code == 0 and r["removed"] == "obama"
    assert not (store.root / CLASSIFIER_FILE).exists()  # nobody with a face is left: no classifier data at all
    assert "obama" not in (store.root / MANIFEST).read_text()
    assert main(["profiles", "sync", str(tmp_path / "missing"), "--config", str(cfg), "--json"]) == 2
    assert "faces folder not found" in capsys.readouterr().err


# --- plumbing (fakes) ------------------------------------------------------------------------------

class FakeEncoder:
    def __init__(self, encodings: dict) -> None:
        self.encodings, self.calls = encodings, []

    def encode_boxes(self, rgb, boxes):  # noqa: ANN001, ANN201
        self.calls.append(len(boxes))
        return np.array([self.encodings[b[3] // 200] for b in boxes])  # the person is chosen by the box's x


def test_names_stick_to_tracks_between_rechecks():
    from tools.vision.who import FaceNamer

    cfg = load_settings(ROOT / "config.yaml").face_id  # recheck every 2 s, one per frame
    a, b = np.zeros(128), np.full(128, 0.2)
    clf = FaceClassifier.train({"ann": a[None], "bob": b[None]}, cfg)
    enc = FakeEncoder({0: a + 0.01, 1: b, 2: np.full(128, 0.5)})  # x 400+: a stranger
    namer = FaceNamer(clf, enc, cfg, video=True)
    frame = np.zeros((480, 640, 3), np.uint8)
    box = lambda x: {"box": [x, 100, x + 80, 200]}  # noqa: E731
    out = namer.name(frame, [box(10), box(210)], t=0.0)
    assert [f["user"] for f in out] == ["ann", "bob"] and enc.calls == [2]
    for i in range(1, 5):  # slow motion: names kept, nothing encoded
        out = namer.name(frame, [box(10 + i), box(210 + i)], t=i * 0.2)
    assert [f["user"] for f in out] == ["ann", "bob"] and enc.calls == [2]
    namer.name(frame, [box(15), box(215)], t=2.5)  # both due: one re-check this frame, the other next
    namer.name(frame, [box(15), box(215)], t=2.7)
    assert enc.calls == [2, 1, 1]
    out = namer.name(frame, [box(15), box(215), box(420)], t=2.9)  # a newcomer is recognised at once
    assert enc.calls[-1] == 1 and out[2]["user"] is None and out[2]["user_score"] is not None
    out = namer.name(frame, [box(15), box(250), box(420)], t=3.0)  # bob's box jumped: recognised again
    assert enc.calls[-1] == 1
    enc.encodings[0] = a + 0.06  # ann turns away: distance 0.68, still closest to ann
    out = namer.name(frame, [box(15), box(250), box(420)], t=5.0)
    assert enc.calls[-1] == 1 and out[0]["user"] == "ann"  # a re-check of her unbroken track keeps the name
    assert FaceNamer(clf, enc, cfg, video=True).name(frame, [box(15)], t=0.0)[0]["user"] is None  # fresh: no slack
    enc.encodings[0] = b  # someone else on that track: replaced at its next re-check (the third, oldest first)
    for t in (7.5, 7.6, 7.7):
        out = namer.name(frame, [box(15), box(250), box(420)], t=t)
    assert out[0]["user"] == "bob"


def test_who_is_here_sentences():
    from tools.vision.scene import describe_scene
    from tools.vision.who import who_is_here

    f = lambda u: {"box": [0, 0, 10, 10], "emotion": "neutral", "user": u}  # noqa: E731
    assert who_is_here([f("obama"), f(None)])[0] == "Obama and one person I don't know are here."
    assert who_is_here([f(None), f(None)])[0] == "Two people I don't know are here."
    assert who_is_here([f("lin_manuel_miranda")])[0] == "Lin Manuel Miranda is here."
    assert who_is_here([{"box": [0, 0, 1, 1]}]) == (None, None)  # faces never run through recognition
    r = describe_scene([], (640, 480), [f("obama"), f("biden"), f(None)])
    assert r.summary.startswith("Biden, Obama and one person I don't know are here.")
    assert r.data["people"] == {"known": ["biden", "obama"], "unknown": 1}


def test_router_sends_who_is_in_the_room_to_describe_scene():
    from agent.think.router import MiniLMRouter

    router = MiniLMRouter()
    for text in ("Who's in the room?", "Who is here with me right now?", "Do you know the people you can see?"):
        assert router.classify(text).label == "describe_scene", text

"""Monocular SLAM on rendered sequences with known poses, bad input, objects on the map, query_map, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.app.cli import main
from agent.common.config import SlamSettings, load_settings
from tools.base import MapQuery
from tools.slam.io import folder_frames, read_intrinsics, read_tum
from tools.slam.map import Status, camera_center
from tools.slam.objects import anchor_detection
from tools.slam.query import SlamMapQuery, _direction
from tools.slam.run import run_sequence
from tools.slam.synth import default_K, find_photos, frames, write_sequence

ROOT = Path(__file__).resolve().parent.parent
CASTLE = Path("/usr/share/visp-images-data/ViSP-images/mbt-depth/Castle-simu")

pytestmark = pytest.mark.skipif(not find_photos(), reason="no photos for textures (testdata/scenes or opencv-doc)")


@pytest.fixture(scope="module")
def smooth_dir(tmp_path_factory) -> Path:
    return write_sequence(tmp_path_factory.mktemp("slam") / "smooth", n=70)


@pytest.fixture(scope="module")
def smooth_run(smooth_dir):
    K, size = read_intrinsics(smooth_dir / "K.yaml")
    return run_sequence(folder_frames(smooth_dir), K, SlamSettings(), size)


def test_smooth_sequence_accurate_and_never_lost(smooth_run, smooth_dir):
    counts = smooth_run.slam.map.status_counts()
    assert counts["lost"] == 0 and counts["relocalised"] == 0
    assert counts["tracking"] >= 60  # initialised within the first few frames
    stats, _ = smooth_run.evaluate(smooth_dir / "groundtruth.txt")
    assert stats["ate_rmse"] is not None and stats["path_length"] > 1.0
    assert stats["ate_rmse"] <= 0.02 * stats["path_length"], stats
    assert len(smooth_run.slam.map.keyframes) >= 5 and len(smooth_run.slam.map.points) > 500


def test_pure_rotation_is_not_initialised():
    run = run_sequence(((t, img) for t, img, _ in frames(30, "rotation")), default_K())
    assert {r.status for r in run.results} == {Status.NOT_INITIALISED}
    assert any("rotation" in r.message or "parallax" in r.message for r in run.results)
    assert run.slam.map.keyframes == {}


def test_textureless_and_too_few_features():
    run = run_sequence(((t, img) for t, img, _ in frames(8, "textureless")), default_K())
    assert all(r.status == Status.NOT_INITIALISED and "few features" in r.message for r in run.results)


def test_lost_on_blank_frames_then_relocalised():
    seq = list(frames(45, "smooth"))
    blank = np.full_like(seq[0][1], 128)
    stream = [(t, img) for t, img, _ in seq[:40]]
    stream += [(seq[39][0] + 0.033 * (k + 1), blank) for k in range(4)]
    stream += [(seq[39][0] + 0.033 * (5 + k), img) for k, (_, img, _) in enumerate(seq[30:36])]  # revisit
    run = run_sequence(stream, default_K())
    st = [r.status for r in run.results]
    assert st[40:44] == [Status.LOST] * 4
    assert Status.RELOCALISED in st[44:] and st[-1] in (Status.TRACKING, Status.RELOCALISED)


def test_video_ending_mid_initialisation():
    run = run_sequence(((t, img) for t, img, _ in frames(2, "smooth")), default_K())
    assert [r.status for r in run.results] == [Status.NOT_INITIALISED] * 2
    assert not run.slam.map.initialised
    assert SlamMapQuery(run.slam.map).answer("where is the cup?").summary.startswith("There is no map")


def test_direction_words():
    assert _direction(0) == "straight ahead"
    assert _direction(-45) == "ahead to your left" and _direction(90) == "to your right"
    assert _direction(-130) == "behind you to the left" and _direction(179) == "behind you"


def test_query_without_map_says_so():
    q: MapQuery = SlamMapQuery(None)
    r = q.answer("How far have we travelled?")
    assert not r.ok and "no map" in r.summary.lower()


def test_objects_and_query_answers_come_from_the_map(smooth_run):
    slam = smooth_run.slam
    m = slam.map
    t_now = m.trajectory[-1].timestamp
    uv, _, _ = slam.frame_points()  # boxes left and right of the image centre, where map points are
    xl, xr = np.percentile(uv[:, 0], [10, 90])
    left = anchor_detection(slam, "cup", (xl - 60, 0, min(xl + 60, 300), 480), t_now - 1.0)
    right = anchor_detection(slam, "book", (max(xr - 60, 340), 0, xr + 60, 480), t_now)
    assert left is not None and right is not None and left.n_points >= 3
    q = SlamMapQuery(m)
    a = q.answer("Where is the cup?")
    assert a.ok and a.data["bearing_deg"] < 0 and a.data["direction"] == _direction(a.data["bearing_deg"])
    assert a.data["direction"] in a.summary
    T, _ = m.current_pose()
    Xc = T[:3, :3] @ left.position + T[:3, 3]
    assert a.data["distance"] == pytest.approx(np.linalg.norm(Xc), abs=1e-3)
    b = q.answer("is the book on my left or right?")
    assert b.data["bearing_deg"] > 0 and b.data["direction"] == _direction(b.data["bearing_deg"])
    c = np.array([camera_center(e.T_cw) for e in m.trajectory if e.T_cw is not None])
    moved = q.answer("How far have we moved?")
    assert moved.data["distance"] == pytest.approx(np.linalg.norm(np.diff(c, axis=0), axis=1).sum(), abs=1e-3)
    assert "map units" in moved.summary
    size = q.answer("How big is the map?")
    assert size.data["keyframes"] == len(m.keyframes) and size.data["map_points"] == len(m.points)
    seen = q.answer("When did you last see the cup?")
    assert seen.data["seconds_ago"] == pytest.approx(1.0, abs=1e-6)
    unknown = q.answer("Where is the giraffe?")
    assert not unknown.ok and "giraffe" in unknown.summary
    metres = SlamMapQuery(m, metres_per_unit=2.0).answer("how far have we travelled")
    assert metres.data["unit"] == "m" and metres.data["distance"] == pytest.approx(2 * moved.data["distance"], abs=0.01)


def test_cli_map_json(smooth_dir, tmp_path, capsys):
    png = tmp_path / "map.png"
    rc = main(["map", "--frames", str(smooth_dir), "--intrinsics", str(smooth_dir / "K.yaml"),
               "--gt", str(smooth_dir / "groundtruth.txt"), "-o", str(png), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and png.stat().st_size > 0
    for key in ("keyframes", "map_points", "trajectory_path", "ate_rmse", "path_length", "status_counts"):
        assert key in out
    assert out["ate_rmse"] <= 0.02 * out["path_length"]
    t, p = read_tum(out["trajectory_path"])
    assert len(t) == out["status_counts"]["tracking"] + out["status_counts"]["relocalised"]


def test_cli_map_bad_input(tmp_path, capsys):
    rc = main(["map", "--frames", str(tmp_path / "missing"), "--intrinsics", str(tmp_path / "K.yaml"), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1


def test_cli_map_bad_gt_fails_before_slam(smooth_dir, tmp_path, capsys, monkeypatch):
    import tools.slam.run

    def no_slam(*a, **k):
        raise AssertionError("SLAM ran before the ground truth was checked")

    monkeypatch.setattr(tools.slam.run, "run_sequence", no_slam)
    bad = tmp_path / "gt.txt"
    bad.write_text("not a trajectory\n")
    rc = main(["map", "--frames", str(smooth_dir), "--intrinsics", str(smooth_dir / "K.yaml"),
               "--gt", str(bad), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "gt.txt" in err


@pytest.mark.slow
def test_noisy_blurred_sequence(tmp_path):
    d = write_sequence(tmp_path / "noisy", n=90, noise=6.0, blur=5, seed=1)
    K, size = read_intrinsics(d / "K.yaml")
    run = run_sequence(folder_frames(d), K, load_settings(ROOT / "config.yaml").slam, size)
    stats, _ = run.evaluate(d / "groundtruth.txt")
    assert run.slam.map.status_counts()["lost"] == 0
    assert stats["ate_rmse"] <= 0.02 * stats["path_length"], stats


def castle_sequence(out: Path) -> Path:
    """ViSP Castle-simu (Debian visp-images-data) as a folder sequence: poses are cMo, K from Config/chateau.xml."""
    from tools.slam.io import write_intrinsics, write_tum

    out.mkdir(parents=True, exist_ok=True)
    imgs = sorted((CASTLE / "Images").glob("*.pgm"))
    poses = [np.linalg.inv(np.loadtxt(CASTLE / "CameraPose" / f"Camera_{i + 1:03d}.txt")) for i in range(len(imgs))]
    (out / "times.txt").write_text("".join(f"{i / 30:.6f} {p}\n" for i, p in enumerate(imgs)))
    write_tum(out / "gt.txt", [i / 30 for i in range(len(imgs))], poses)
    write_intrinsics(out / "K.yaml", np.array([[700.0, 0, 320], [0, 700.0, 240], [0, 0, 1]]), (640, 480))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not CASTLE.is_dir(), reason="apt-get install visp-images-data")
def test_castle_simu(tmp_path, capsys):
    d = castle_sequence(tmp_path / "castle")
    rc = main(["map", "--frames", str(d), "--intrinsics", str(d / "K.yaml"), "--gt", str(d / "gt.txt"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status_counts"]["lost"] == 0
    assert out["ate_rmse"] <= 0.02 * out["path_length"], out

"""Rendered test sequences with known poses: textured planes seen by a moving pinhole camera.

Each plane is drawn with one homography (``cv2.warpPerspective``), far planes first. Writes
``frames/*.png``, ``times.txt`` (``timestamp filename``), ``groundtruth.txt`` (TUM, camera->world)
and ``K.yaml``. ``python -m tools.slam.synth OUT_DIR`` renders the default sequence.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from tools.slam.io import write_intrinsics, write_tum

WIDTH, HEIGHT = 640, 480
PHOTO_DIRS = (Path(__file__).resolve().parents[3] / "shared" / "testdata" / "scenes",
              Path("/usr/share/doc/opencv-doc/examples/data"))


@dataclass(frozen=True)
class Plane:
    origin: tuple[float, float, float]  # world position of texture pixel (0, 0)
    u: tuple[float, float, float]  # unit direction of texture x
    v: tuple[float, float, float]  # unit direction of texture y
    size: tuple[float, float]  # metres along u, v
    texture: int  # index into the texture list


# A room-like scene: a far wall, a floor and panels at several depths (not one plane: no degeneracy).
DEFAULT_PLANES = (
    Plane((-7.0, -4.0, 9.0), (1, 0, 0), (0, 1, 0), (14.0, 6.0), 0),
    Plane((-3.5, 2.0, 2.6), (1, 0, 0), (0, 0, 1), (7.0, 6.4), 1),
    Plane((-3.2, -1.6, 5.0), (1, 0, 0), (0, 1, 0), (2.4, 1.8), 2),
    Plane((1.0, -1.0, 4.0), (0.8, 0, -0.6), (0, 1, 0), (2.0, 1.5), 3),
    Plane((-0.6, 0.2, 6.5), (1, 0, 0), (0, 1, 0), (1.6, 1.2), 4),
)


# Detailed photos preferred as textures (others are used only when these are missing).
PREFERRED = ("fruits.jpg", "messi5.jpg", "baboon.jpg", "building.jpg", "home.jpg", "aero1.jpg", "board.jpg")


def find_photos(extra: list[Path] | None = None) -> list[Path]:
    """Real photos for the textures (project test data, then Debian opencv-doc samples)."""
    found: dict[str, Path] = {}
    for d in [*(extra or []), *PHOTO_DIRS]:
        if d.is_dir():
            for p in sorted(d.glob("*.jpg")):
                found.setdefault(p.name, p)
    rank = {n: i for i, n in enumerate(PREFERRED)}
    return sorted(found.values(), key=lambda p: (rank.get(p.name, len(rank)), p.name))


def make_textures(photos: list[Path], n: int, size: int = 1024) -> list[np.ndarray]:
    """n distinct textures: different photos, or different crops/flips when there are few."""
    imgs = [im for im in (cv2.imread(str(p)) for p in photos) if im is not None and min(im.shape[:2]) >= 200]
    if not imgs:
        raise FileNotFoundError("no photos found for the textures (need testdata/scenes or opencv-doc)")
    out = []
    for i in range(n):
        im = imgs[i % len(imgs)]
        rnd = i // len(imgs)
        h, w = im.shape[:2]
        if rnd:  # another crop of the same photo, flipped
            ch, cw = int(h * 0.6), int(w * 0.6)
            y0, x0 = (rnd * 37) % (h - ch + 1), (rnd * 53) % (w - cw + 1)
            im = cv2.flip(im[y0:y0 + ch, x0:x0 + cw], rnd % 2)
        scale = size / max(im.shape[:2])
        out.append(cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return out


def default_K() -> np.ndarray:
    return np.array([[500.0, 0, WIDTH / 2], [0, 500.0, HEIGHT / 2], [0, 0, 1]])


def smooth_trajectory(n: int, kind: str = "smooth") -> list[np.ndarray]:
    """Camera->world poses: ``smooth`` (sideways + forward with yaw/pitch), ``rotation`` (in place)."""
    poses = []
    for s in np.linspace(0.0, 1.0, n):
        if kind == "rotation":
            pos = np.zeros(3)
            ypr = (np.radians(25) * np.sin(2 * np.pi * s), np.radians(4) * np.sin(4 * np.pi * s), 0.0)
        else:
            pos = np.array([-1.0 + 2.0 * s, 0.15 * np.sin(2 * np.pi * s), 0.8 * np.sin(np.pi * s)])
            ypr = (np.radians(12) * np.sin(2 * np.pi * s), np.radians(4) * np.sin(2 * np.pi * s + 1), 0.0)
        R = Rotation.from_euler("YXZ", ypr).as_matrix()
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, pos
        poses.append(T)
    return poses


def render(T_wc: np.ndarray, K: np.ndarray, planes: tuple[Plane, ...], textures: list[np.ndarray],
           background: int = 90) -> np.ndarray:
    """One BGR frame: planes far-to-near, each mapped by its texture->image homography."""
    R, t = T_wc[:3, :3].T, -T_wc[:3, :3].T @ T_wc[:3, 3]
    img = np.full((HEIGHT, WIDTH, 3), background, np.uint8)
    order = []
    for p in planes:
        tex = textures[p.texture % len(textures)]
        th, tw = tex.shape[:2]
        O, u, v = (np.asarray(x, float) for x in (p.origin, p.u, p.v))
        corners = [O, O + u * p.size[0], O + v * p.size[1], O + u * p.size[0] + v * p.size[1]]
        depth = [(R @ c + t)[2] for c in corners]
        if min(depth) <= 0.05:
            continue  # partly behind the camera: not drawn
        H = K @ np.column_stack([R @ u * p.size[0] / tw, R @ v * p.size[1] / th, R @ O + t])
        order.append((-float(np.mean(depth)), H, tex))
    for _, H, tex in sorted(order, key=lambda x: x[0]):
        warped = cv2.warpPerspective(tex, H, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.full(tex.shape[:2], 255, np.uint8), H, (WIDTH, HEIGHT),
                                   flags=cv2.INTER_NEAREST)
        img[mask > 0] = warped[mask > 0]
    return img


def degrade(img: np.ndarray, rng: np.random.Generator, noise: float, blur: int) -> np.ndarray:
    """Sensor noise (std in grey levels) and horizontal motion blur (kernel length in pixels)."""
    out = img
    if blur > 1:
        k = np.zeros((blur, blur), np.float32)
        k[blur // 2] = 1.0 / blur
        out = cv2.filter2D(out, -1, k)
    if noise > 0:
        out = np.clip(out + rng.normal(0, noise, out.shape), 0, 255).astype(np.uint8)
    return out


def frames(n: int = 80, kind: str = "smooth", noise: float = 0.0, blur: int = 0, fps: float = 30.0,
           photos: list[Path] | None = None, seed: int = 0) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """(timestamp, BGR frame, camera->world pose) of a rendered sequence; ``textureless`` gives blank frames."""
    K, rng = default_K(), np.random.default_rng(seed)
    textures = [] if kind == "textureless" else make_textures(photos or find_photos(), len(DEFAULT_PLANES))
    for i, T in enumerate(smooth_trajectory(n, "smooth" if kind == "textureless" else kind)):
        img = (np.full((HEIGHT, WIDTH, 3), 128, np.uint8) if kind == "textureless"
               else render(T, K, DEFAULT_PLANES, textures))
        yield i / fps, degrade(img, rng, noise, blur), T


def write_sequence(out: Path, n: int = 80, kind: str = "smooth", noise: float = 0.0, blur: int = 0,
                   fps: float = 30.0, photos: list[Path] | None = None, seed: int = 0) -> Path:
    """Render a sequence into ``out``; returns ``out``."""
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    stamps: list[float] = []
    poses: list[np.ndarray] = []
    lines: list[str] = []
    for t, img, T in frames(n, kind, noise, blur, fps, photos, seed):
        name = f"frames/{len(stamps):05d}.png"
        cv2.imwrite(str(out / name), img)
        stamps.append(t)
        poses.append(T)
        lines.append(f"{t:.6f} {name}")
    (out / "times.txt").write_text("\n".join(lines) + "\n")
    write_tum(out / "groundtruth.txt", stamps, poses)
    write_intrinsics(out / "K.yaml", default_K(), (WIDTH, HEIGHT))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="render a SLAM test sequence with ground truth")
    ap.add_argument("out")
    ap.add_argument("-n", type=int, default=80)
    ap.add_argument("--kind", choices=["smooth", "rotation", "textureless"], default="smooth")
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--blur", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(write_sequence(Path(a.out), a.n, a.kind, a.noise, a.blur, seed=a.seed))


if __name__ == "__main__":
    main()

"""Crop-based ("patch") evaluation: FIDs on random native-resolution crops, the study's fine-scale test.

The study names a crop mode by a suffix appended to both the real and the fake set's name in
``results.csv``: ``-CROPPED64`` (random 64×64 crops) or ``-CROPPED299CS_0.1,1_CR_1,1`` (a random
resized crop: area fraction in [0.1, 1], aspect ratio 1, shown to the network at 299 px). Crops
are then resized to each network's input by clean-fid's resizer, like whole images.

Crop positions depend only on (seed, image index, crop number), so real image i and generated
image i are cropped at the same places. Sizes are in pixels of the dataset's resolution
(``reference``); images of another size (a 256-px model scored against 1024-px data) get crops of
the same field of view. With ``on_disk`` (the disk radius as a fraction of the image side; level
1.5 frames put the Sun's centre at the image centre) every crop lies wholly inside the disk, so
patch FIDs compare solar structure only, not off-limb corona or sky.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PATTERN = re.compile(r"^CROPPED(\d+)(?:CS_([0-9.]+),([0-9.]+)_CR_1,1)?$")


@dataclass(frozen=True)
class CropMode:
    """One crop protocol. ``size``: crop side in px at ``reference`` resolution, or for a random
    resized crop (``scale`` set) the nominal output size; ``per_image`` crops of every image."""

    size: int
    scale: tuple[float, float] | None = None
    per_image: int = 1
    seed: int = 0
    reference: int | None = None
    on_disk: float | None = None

    @classmethod
    def parse(cls, name: str, **kw) -> CropMode:
        """``CROPPED64`` or ``CROPPED299CS_0.1,1_CR_1,1`` (a leading ``-`` is allowed)."""
        m = _PATTERN.match(name.lstrip("-"))
        if not m:
            raise ValueError(f"crop mode {name!r} is not CROPPED<size> or CROPPED<size>CS_<lo>,<hi>_CR_1,1")
        scale = (float(m[2]), float(m[3])) if m[2] else None
        if scale and not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"crop mode {name!r}: crop scale must satisfy 0 < lo ≤ hi ≤ 1")
        return cls(int(m[1]), scale, **kw)

    @property
    def suffix(self) -> str:
        """The study's name suffix, e.g. ``-CROPPED64``."""
        if self.scale is None:
            return f"-CROPPED{self.size}"
        return f"-CROPPED{self.size}CS_{self.scale[0]:g},{self.scale[1]:g}_CR_1,1"

    def boxes(self, index: int, h: int, w: int) -> list[tuple[int, int, int]]:
        """(top, left, side) of each crop of image ``index`` (h × w)."""
        rng = np.random.default_rng([self.seed, index])
        short = min(h, w)
        out = []
        for _ in range(self.per_image):
            if self.scale is None:
                side = self.size if self.reference is None else round(self.size * short / self.reference)
            else:
                side = round(short * np.sqrt(rng.uniform(*self.scale)))
            side = int(min(max(side, 1), short))
            if self.on_disk is not None and self.scale is not None:
                side = min(side, int(self.on_disk * short * np.sqrt(2)))  # the largest square inside the disk
            out.append(self._place(rng, h, w, side))
        return out

    def _place(self, rng, h: int, w: int, side: int) -> tuple[int, int, int]:
        if self.on_disk is None:
            return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side
        # Inside the disk: the box's corners within radius r of the centre, i.e. its centre within
        # a box of half-width sqrt(r² − (side/2)²) − side/2 (uniform by rejection over that box).
        r = self.on_disk * min(h, w)
        half = np.sqrt(max(r * r - (side / 2) ** 2, 0.0)) - side / 2
        if half < 0:
            raise ValueError(f"a {side}-px crop does not fit inside a disk of radius {r:.0f} px")
        cy, cx = (h - side) / 2, (w - side) / 2
        for _ in range(1000):
            top, left = cy + rng.uniform(-half, half), cx + rng.uniform(-half, half)
            corners = [(top + dy - h / 2, left + dx - w / 2) for dy in (0, side) for dx in (0, side)]
            if max(y * y + x * x for y, x in corners) <= r * r:
                return int(round(top)), int(round(left)), side
        raise RuntimeError("no on-disk crop position found")  # unreachable: the centre always fits


def crop_images(images: np.ndarray, crop: CropMode) -> np.ndarray:
    """(N, H, W) → (N · per_image, s, s): the protocol's crops of every image, image by image."""
    out = [img[t:t + s, l:l + s] for i, img in enumerate(images) for t, l, s in crop.boxes(i, *img.shape)]
    if len({c.shape for c in out}) > 1:
        raise ValueError(f"{crop.suffix}: spectra need crops of one size (not a random-resized crop)")
    return np.stack(out)


def protocol_fields(crop: CropMode | None) -> dict:
    """The crop protocol as feature and spectrum files (.npz) store it (whole images: ``crop=""``),
    so generated sets are later cropped alike (`stored_protocol` reads it back)."""
    c = crop or CropMode(0)
    return {"crop": c.suffix if crop else "", "crop_per_image": c.per_image, "crop_seed": c.seed,
            "crop_reference": c.reference or 0, "crop_on_disk": c.on_disk or 0.0}


def stored_protocol(z) -> CropMode | None:
    """The crop protocol of an opened feature or spectrum file; None: whole images."""
    if "crop" not in z or not str(z["crop"]):
        return None
    on_disk = float(z["crop_on_disk"]) if "crop_on_disk" in z else 0.0
    return CropMode.parse(str(z["crop"]), per_image=int(z["crop_per_image"]), seed=int(z["crop_seed"]),
                          reference=int(z["crop_reference"]) or None, on_disk=on_disk or None)

"""Crop-based ("patch") evaluation: FIDs on random native-resolution crops, the study's fine-scale test.

The study names a crop mode by a suffix appended to both the real and the fake set's name in
``results.csv``: ``-CROPPED64`` (random 64×64 crops) or ``-CROPPED299CS_0.1,1_CR_1,1`` (a random
resized crop: area fraction in [0.1, 1], aspect ratio 1, shown to the network at 299 px). Crops
are then resized to each network's input by clean-fid's resizer, like whole images.

Crop positions depend only on (seed, image index, crop number), so real image i and generated
image i are cropped at the same places. Sizes are in pixels of the dataset's resolution
(``reference``); images of another size (a 256-px model scored against 1024-px data) get crops of
the same field of view.
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
            out.append((int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side))
        return out

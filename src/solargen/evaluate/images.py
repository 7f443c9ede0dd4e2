"""Image folders read for scoring: every image as grey levels in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import InputError, image_files


def load_images(folder: str | Path, by_index: bool = False) -> np.ndarray:
    """An image folder as (N, H, W) float64 in [0, 1] (grey).

    ``by_index`` orders ``out_{i}.png`` by i (not by name), as pairing with targets needs.
    """
    from PIL import Image

    files = image_files(folder)
    if by_index:
        files = sorted(files, key=lambda f: int(Path(f).stem.rsplit("_", 1)[1]))
    out = []
    for f in files:
        try:
            out.append(np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255)
        except OSError as e:
            raise InputError(f"{f}: cannot read image ({e})") from None
    return np.stack(out)

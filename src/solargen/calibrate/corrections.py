"""aiapy's calibration tables: the pointing update and the degradation correction.

Step 2 (pointing from a pointing-table file, ``aiapy.calibrate.update_pointing``) and step 5
(degradation, ``aiapy.calibrate.degradation`` with a correction-table file; the aiapy wheel ships
the V8 table, used when no other file is configured). Tables are read once per process (cached)
and a table that cannot be read is an `~solargen.io.InputError` naming the file.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..io import InputError

__all__ = ["wheel_correction_table", "degradation_factor", "apply_pointing"]


def wheel_correction_table() -> Path:
    """The degradation-correction table (V8) that ships in the aiapy wheel: usable offline."""
    import aiapy

    path = Path(aiapy.__file__).parent / "tests" / "data" / "aia_V8_20171210_050627_response_table.txt"
    if not path.exists():
        raise InputError(f"{path}: aiapy's bundled correction table is missing; configure degradation_table")
    return path


@functools.lru_cache(maxsize=4)
def _correction_table(path: str):
    from aiapy.calibrate.util import get_correction_table

    try:
        return get_correction_table(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable degradation-correction table ({e})") from None


@functools.lru_cache(maxsize=4)
def _pointing_table(path: str):
    from astropy.table import QTable

    try:
        return QTable.read(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable pointing table ({e})") from None


def degradation_factor(wavelength_aa: float, date, table_path: str | Path) -> float:
    """aiapy's degradation factor of a channel at a date (``aiapy.calibrate.degradation``).

    Parameters
    ----------
    wavelength_aa : the channel (Å).
    date : the observation time (anything `astropy.time.Time` reads).
    table_path : a correction-table file (`wheel_correction_table` is aiapy's own V8).

    Returns
    -------
    float
        The factor, ≤ 1 after launch; the image is divided by it.
    """
    import astropy.units as u
    from aiapy.calibrate import degradation
    from astropy.time import Time

    table = _correction_table(str(table_path))
    return float(degradation(wavelength_aa * u.angstrom, Time(date), correction_table=table)[0])


def apply_pointing(smap, table_path: str | Path):
    """The map with CRPIX/CDELT/CROTA2 from the pointing table (``aiapy.calibrate.update_pointing``).

    aiapy 0.10.2 accepts only 4096² maps; the table is defined on that grid. For a binned frame
    (N < 4096, e.g. in tests) the update is computed on a 4096² stand-in carrying the header (no
    pixel data is copied) and carried over to the N² grid.

    Parameters
    ----------
    smap : a level-1 map (N, N).
    table_path : an astropy-readable pointing table (T_START, T_STOP, A_<wl>_X0/Y0/IMSCALE/INSTROT).

    Returns
    -------
    sunpy.map.GenericMap
        The same data with the table's pointing in its header (PCi_j dropped: CROTA2 holds the roll).
    """
    import sunpy.map
    from aiapy.calibrate import update_pointing

    table = _pointing_table(str(table_path))
    n = smap.data.shape[1]
    full = 4096
    meta = dict(smap.meta)
    for k in ("pc1_1", "pc1_2", "pc2_1", "pc2_2"):  # update_pointing pops these and derives from CROTA2
        meta.setdefault(k, 0.0)
    f = full / n
    meta.update(naxis1=full, naxis2=full, cdelt1=meta["cdelt1"] / f, cdelt2=meta["cdelt2"] / f,
                crpix1=(meta["crpix1"] - 0.5) * f + 0.5, crpix2=(meta["crpix2"] - 0.5) * f + 0.5)
    stand_in = sunpy.map.Map(np.broadcast_to(np.float32(0), (full, full)), meta)
    try:
        new = update_pointing(stand_in, pointing_table=table).meta
    except (IndexError, KeyError) as e:
        raise InputError(f"{table_path}: no usable pointing for {smap.date.isot} ({e})") from None
    out = dict(smap.meta)
    for k in ("pc1_1", "pc1_2", "pc2_1", "pc2_2"):
        out.pop(k, None)
    out.update(crpix1=(new["crpix1"] - 0.5) / f + 0.5, crpix2=(new["crpix2"] - 0.5) / f + 0.5,
               cdelt1=new["cdelt1"] * f, cdelt2=new["cdelt2"] * f, crota2=new["crota2"],
               x0_mp=new["x0_mp"], y0_mp=new["y0_mp"])
    return sunpy.map.Map(smap.data, out)

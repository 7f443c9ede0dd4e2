"""What a calibration does: the steps and their settings (`Options`), and the level-1 frame's
physical plausibility thresholds (`Plausibility`). Both are recorded with every shard."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Options", "Plausibility", "options_dict"]


@dataclass(frozen=True)
class Options:
    """What the calibration does; all of it is recorded with the output.

    Parameters
    ----------
    method : ``"fused"`` or ``"reference"`` (see `solargen.calibrate`); ignored if not ``register``.
    register : registration to level 1.5 (off: a plain block mean of the level-1 grid).
    exposure : divide by EXPTIME (DN → DN/s).
    degradation : divide by the degradation factor of ``degradation_table`` (None: the aiapy
        wheel's V8 table).
    pointing_table : an astropy-readable table (e.g. ECSV from ``get_pointing_table``) with
        T_START, T_STOP, A_<wl>_X0/Y0/IMSCALE/INSTROT; None: the level-1 header's pointing.
    rsun_arcsec : rescale every frame so the solar radius is this many arcsec at 0.6″/px (SDOML
        uses 976″); None: no rescaling.
    """

    method: str = "fused"
    register: bool = True
    exposure: bool = True
    degradation: bool = False
    degradation_table: str | None = None
    pointing_table: str | None = None
    rsun_arcsec: float | None = None

    def __post_init__(self):
        if self.method not in ("fused", "reference"):
            raise ValueError(f"calibration method must be 'fused' or 'reference', got {self.method!r}")
        if self.rsun_arcsec is not None and not self.rsun_arcsec > 0:
            raise ValueError(f"rsun_arcsec must be positive, got {self.rsun_arcsec}")


@dataclass(frozen=True)
class Plausibility:
    """Thresholds of the physical plausibility check of a level-1 frame (config:
    ``data.calibration.plausibility``). It catches what the header and checksums cannot: data
    bytes that are garbage (no CHECKSUM to catch them), all-negative or blank frames. Both tests
    are physical, with wide margins, so that no good frame and no flare frame fails them.

    Parameters
    ----------
    min_disk_to_background : the median level-1 DN inside 0.9 R_sun over the median beyond
        1.25 R_sun (floored at the read noise,
        `~solargen.calibrate.level1.BACKGROUND_FLOOR_DN`). The EUV disk is ~10–100×
        the far corona at 193 Å; a flare's scattered light raises the background by a few % of the
        disk at most. Garbage bytes or a blank frame give ~1, an all-negative frame ≤ 0.
    max_outside_range_fraction : the largest fraction of pixels outside ``detector_range_dn``.
    detector_range_dn : (low, high) DN a level-1 pixel can hold: the 14-bit ADC's 0 … 16383 DN
        less the dark (read noise ~1.2 DN, so a few DN below 0), times the flat field (within
        ±25 %). Uniform garbage int16 puts ~2/3 of its pixels outside, garbage float32 ~1/2.
    """

    min_disk_to_background: float = 2.0
    max_outside_range_fraction: float = 0.01
    detector_range_dn: tuple[float, float] = (-100.0, 20480.0)

    def __post_init__(self):
        lo, hi = self.detector_range_dn
        if not (self.min_disk_to_background > 0 and 0 <= self.max_outside_range_fraction < 1 and lo < hi):
            raise ValueError(f"implausible plausibility thresholds {self}")


def options_dict(opts: Options) -> dict:
    """``Options`` as a plain dict (for JSON)."""
    return asdict(opts)

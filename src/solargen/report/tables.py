"""The study's tables, rebuilt from a ``results.csv`` (this run's, or the authors' published one).

Every function takes the long table of `read_results` (``metric, value, real, fake, net`` plus
``run`` and ``crop``) and returns a small wide DataFrame; nothing here knows where the numbers came
from, so the same code renders the demo, the paper-scale run and the published file.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

#: Feature networks for "the" FID of a table, best first: the study's InceptionV3, else the
#: offline networks this workflow always has (labelled as such wherever they are used).
NET_PREFERENCE = ("inception_v3", "efficientnet_lite0", "random_inception_v3")

#: Diffusion run names: ``diffusion_{T}steps_train_{S}_steps_inference_{K}Ktraining[_suffix]``.
DIFFUSION_NAME = re.compile(r"diffusion_(\d+)steps_train_(\d+)_steps_inference_(\d+)Ktraining(.*)")

#: The study's regularisation table: name suffix → row label (all at T = 1000, S = 250).
REGULARISATION = {
    "": "Random horizontal flip",
    "_no_random_flip": "No regularization",
    "_no_random_flip_dropout0.3": "Dropout=0.3",
    "_small_unet": "Random h-flip + reduced capacity",
}

#: ProjectedGAN ablations by what they change (study.md §3.1).
ABLATION_GROUPS = {
    "baseline": ["full_projectedgan", "full_projectedgan_baseline"],
    "feature network": ["efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite3",
                        "unfreeze_feature_network", "randomly_initialized_feature_network",
                        "randomly_initialized_feature_network_unfrozen"],
    "projections": ["no_cross_scale_mixing", "no_cross_scale_and_no_cross_channel_mixing",
                    "trainable_projections", "unfreeze_feature_network+trainable_projections"],
    "discriminators": ["discriminator_1", "discriminator_1,2", "discriminator_1,2,3", "stylegan2_discriminator"],
    "augmentation": ["augmentations_off"],
}

#: The study's patch-FID columns, in order.
CROP_COLUMNS = ["CROPPED64", "CROPPED128", "CROPPED256", "CROPPED299", "CROPPED299CS_0.1,1_CR_1,1"]


def read_results(path: str | Path) -> pd.DataFrame:
    """A results.csv as a long table with ``run`` (``fake`` without its crop suffix) and ``crop``.

    The published file's quirks are handled: rows with an empty ``net`` duplicate the
    ``inception_v3`` rows (the notebook's default network), so they become ``inception_v3`` and
    exact duplicates are dropped; crop names carry quoted commas (``CROPPED299CS_0.1,1_CR_1,1``)
    and backbone names carry dashes (``efficientnet-lite1-CROPPED64``), so the crop is whatever
    follows ``-CROPPED``.
    """
    df = pd.read_csv(path, dtype={"metric": str, "real": str, "fake": str, "net": str})
    missing = {"metric", "value", "real", "fake", "net"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: not a results.csv (missing columns {sorted(missing)})")
    df["net"] = df["net"].fillna("").replace("", "inception_v3")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    key = ["metric", "real", "fake", "net"]
    dup = df.duplicated(key, keep=False)
    conflicting = df[dup].groupby(key)["value"].nunique()
    if (conflicting > 1).any():
        log.warning("%s: %d metric rows appear twice with different values; keeping the first",
                    path, int((conflicting > 1).sum()))
    df = df.drop_duplicates(key, keep="first").reset_index(drop=True)
    parts = df["fake"].str.split("-CROPPED", n=1, expand=True, regex=False)
    df["run"] = parts[0]
    df["crop"] = ("CROPPED" + parts[1]).fillna("") if parts.shape[1] > 1 else ""
    return df


def primary_net(df: pd.DataFrame, metric: str = "fid") -> str | None:
    """The network whose ``metric`` a table leads with: InceptionV3 when the run has it, else the
    first offline network present (callers say which in the caption/axis label)."""
    nets = set(df.loc[df.metric == metric, "net"])
    for n in NET_PREFERENCE:
        if n in nets:
            return n
    return min(nets) if nets else None


def family_of(run: str, families: dict[str, str] | None = None) -> str:
    """A run's model family: from the workflow's map when given, else from the study's naming."""
    if families and run in families:
        return families[run]
    for prefix in ("diffusion", "stylegan2", "msdgan", "bicubic"):
        if run.startswith(prefix) and run != "stylegan2_discriminator":
            return prefix
    return "projectedgan"


def _whole(df, metric, net):
    return df[(df.metric == metric) & (df.net == net) & (df.crop == "")].set_index("run")["value"]


def ranking(df: pd.DataFrame, families: dict[str, str] | None = None,
            not_converged: dict[str, str] | None = None) -> pd.DataFrame:
    """All runs ranked by whole-image FID on `primary_net`, with KID/precision/recall beside it.
    With ``not_converged`` (run → the number that decided it) a ``converged`` column marks the runs
    that have not learned the data, so they are not read as ranked like the others."""
    net = primary_net(df)
    out = pd.DataFrame({"fid": _whole(df, "fid", net)})
    for m in ("kid", "precision", "recall"):
        out[m] = _whole(df, m, net)
    out = out.dropna(subset=["fid"]).sort_values("fid")
    out.insert(0, "family", [family_of(r, families) for r in out.index])
    out.insert(0, "rank", range(1, len(out) + 1))
    out["net"] = net
    if not_converged is not None:
        out["converged"] = [f"not converged: {not_converged[r]}" if r in not_converged else "yes" for r in out.index]
    return out.rename_axis("run")


def diffusion_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Whole-image FIDs of the diffusion runs with T, S, K and the regularisation suffix parsed."""
    net = primary_net(df)
    rows = []
    for run, fid in _whole(df, "fid", net).items():
        m = DIFFUSION_NAME.fullmatch(run)
        if m:
            rows.append({"run": run, "T": int(m[1]), "S": int(m[2]), "K": int(m[3]), "suffix": m[4], "fid": fid})
    return pd.DataFrame(rows, columns=["run", "T", "S", "K", "suffix", "fid"])


def fid_vs_sampling_steps(df: pd.DataFrame, T: int = 1000, K: int = 58) -> pd.DataFrame:
    """FID against sampling steps S at training diffusion steps T (h-flip, normal UNet, K thousand iters)."""
    d = diffusion_runs(df)
    d = d[(d["T"] == T) & (d["K"] == K) & (d.suffix == "")]
    return d.sort_values("S")[["S", "fid", "run"]].reset_index(drop=True)


def fid_vs_training_steps(df: pd.DataFrame, T_values: tuple[int, ...] | None = (125, 250, 1000, 4000)) -> pd.DataFrame:
    """Best FID over S and training length for each training diffusion-step count T (h-flip,
    normal UNet). The study's bar chart shows T = 125/250/1000/4000 (its T = 500 and 2000 runs, at
    FID 166–204, are left out of the figure); ``T_values=None`` keeps every T."""
    d = diffusion_runs(df)
    d = d[d.suffix == ""]
    if T_values is not None:
        d = d[d["T"].isin(T_values)]
    if d.empty:
        return pd.DataFrame(columns=["T", "fid", "S", "K", "run"])
    best = d.loc[d.groupby("T")["fid"].idxmin()]
    return best.sort_values("T")[["T", "fid", "S", "K", "run"]].reset_index(drop=True)


def regularisation_table(df: pd.DataFrame, T: int = 1000, S: int = 250) -> pd.DataFrame:
    """The study's regularisation table: FID of the T/S runs that differ only in regularisation."""
    d = diffusion_runs(df)
    d = d[(d["T"] == T) & (d["S"] == S) & d.suffix.isin(REGULARISATION)]
    # The plain (h-flip) setting exists at several training lengths; the study reports the 58K one.
    d = d[(d.suffix != "") | (d["K"] == 58)]
    d = d.assign(regularisation=d.suffix.map(REGULARISATION)).sort_values("fid")
    return d[["regularisation", "fid", "K", "run"]].reset_index(drop=True)


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """ProjectedGAN ablations grouped by what they change: FID, KID, precision, recall."""
    net = primary_net(df)
    cols = {m: _whole(df, m, net) for m in ("fid", "kid", "precision", "recall")}
    rows = []
    for group, names in ABLATION_GROUPS.items():
        for name in names:
            if name in cols["fid"].index:
                rows.append({"group": group, "run": name, **{m: v.get(name) for m, v in cols.items()}})
    out = pd.DataFrame(rows, columns=["group", "run", "fid", "kid", "precision", "recall"])
    out["net"] = net
    return out


def crop_table(df: pd.DataFrame) -> pd.DataFrame:
    """Patch FIDs: whole-image FID beside the FID of native-resolution crops, per run."""
    net = primary_net(df)
    fid = df[(df.metric == "fid") & (df.net == net)]
    wide = fid.pivot_table(index="run", columns="crop", values="value", aggfunc="first")
    crops = [c for c in CROP_COLUMNS if c in wide.columns] + sorted(set(wide.columns) - set(CROP_COLUMNS) - {""})
    if "" not in wide.columns or not crops:
        return pd.DataFrame(columns=["fid", *crops])
    out = wide[["", *crops]].rename(columns={"": "fid"}).dropna(how="all", subset=crops).sort_values("fid")
    out.columns.name = None
    return out


#: The study's display scaling of FIDs in its metric-details table, by feature-network name prefix
#: (its MAE feature spaces give tiny FIDs): the column is multiplied and its name says so.
#: VICReg FIDs are shown unscaled, as there.
FID_DISPLAY_SCALE = {"mae_": (100, "×10²")}


def metric_details(df: pd.DataFrame) -> pd.DataFrame:
    """Every whole-image metric of every run (``metric/net`` columns), ordered by the primary FID;
    FIDs of the networks in `FID_DISPLAY_SCALE` scaled for display, as the study's table."""
    whole = df[df.crop == ""]
    wide = whole.assign(column=whole.metric + "/" + whole.net).pivot_table(
        index="run", columns="column", values="value", aggfunc="first")
    lead = f"fid/{primary_net(df)}"
    order = [lead] + sorted(c for c in wide.columns if c != lead) if lead in wide.columns else sorted(wide.columns)
    wide = wide[order]
    wide.columns.name = None
    wide = wide.sort_values(order[0]) if order else wide
    for c in list(wide.columns):
        metric, _, net = c.partition("/")
        scale = next((v for k, v in FID_DISPLAY_SCALE.items() if metric == "fid" and net.startswith(k)), None)
        if scale:
            wide = wide.rename(columns={c: f"{c} {scale[1]}"})
            wide[f"{c} {scale[1]}"] = wide[f"{c} {scale[1]}"] * scale[0]
    return wide


#: How a seed replicate is named in results.csv: ``<run>@seed<s>`` (the top-level seed's keeps ``<run>``).
REPLICATE = re.compile(r"(.+)@seed(\d+)")


def replicate_table(df: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """Mean and spread across seed replicates: per run that has replicates and per whole-frame
    metric (``metric/net``), the number of seeds, mean, sample standard deviation, min and max,
    and the values by seed (the plain run counts as the top-level ``seed``, shown as "base")."""
    whole = df[(df.crop == "") & ~df.metric.str.contains("_ci95_")]
    base = whole.run.str.replace(REPLICATE, r"\1", regex=True)
    reps = set(base[whole.run != base])
    rows = []
    for (run, metric, net), g in whole[base.isin(reps)].assign(base=base).groupby(["base", "metric", "net"]):
        by_seed = {(m[2] if (m := REPLICATE.fullmatch(r)) else ("base" if seed is None else str(seed))): v
                   for r, v in zip(g.run, g.value)}
        v = g.value.to_numpy(float)
        rows.append({"run": run, "metric": metric, "net": net, "n_seeds": len(v), "mean": v.mean(),
                     "sd": v.std(ddof=1) if len(v) > 1 else float("nan"), "min": v.min(), "max": v.max(),
                     "by_seed": " ".join(f"{k}:{x:.4g}" for k, x in sorted(by_seed.items()))})
    return pd.DataFrame(rows, columns=["run", "metric", "net", "n_seeds", "mean", "sd", "min", "max", "by_seed"])


def spectral_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per run the high-band spectral distance with its 95 % bootstrap interval, the full-band one,
    and the signed high-band and full-band bias (negative: missing power) with their intervals."""
    ps = df[(df.net == "power_spectrum") & (df.crop == "")]
    wide = ps.pivot_table(index="run", columns="metric", values="value", aggfunc="first")
    cols = [c for c in ("spectral_distance_high", "spectral_distance_high_ci95_low",
                        "spectral_distance_high_ci95_high", "spectral_distance",
                        "spectral_bias_high", "spectral_bias_high_ci95_low", "spectral_bias_high_ci95_high",
                        "spectral_bias", "spectral_bias_ci95_low", "spectral_bias_ci95_high") if c in wide.columns]
    wide = wide[cols].sort_values(cols[0]) if cols else wide
    wide.columns.name = None
    return wide

"""The study's findings, claim by claim: does each reproduce here, and how sure are we?

Every claim is stated once, in `CLAIMS`, with its source, the runs and metric it compares, the
direction, and the rule that turns numbers into a verdict. The rules and margins were fixed
before any result was looked at; changing one to make a claim pass is not allowed.

Verdicts:

* **holds** — every comparison of the claim holds: the 95 % bootstrap interval of the paired
  difference (both runs scored against the same real-set resamples, `evaluate.bootstrap`)
  excludes zero in the claimed direction;
* **reversed** — at least one comparison's interval excludes zero the other way;
* **inconclusive** — otherwise (an interval includes zero);
* **not in this config** — a run the claim needs is not configured (or has no such metric).

Where no interval can be computed (a results.csv without stored features, such as the published
one) the same rules are applied to the point values, and the ``basis`` column says so: a point
difference of either sign then decides, which is weaker evidence.

Comparison kinds and their margins (all stated here, before any result):

* ``less``: metric(a) < metric(b) (lower is better: FID, KID, spectral distance);
* ``below``: a collapse, value ≤ `COLLAPSE` (precision, recall "near 0");
* ``deficit``: signed spectral bias < 0 (too little fine-scale power);
* ``absence``: no deficit, the bias's interval lies inside ±`ABSENCE_MARGIN`; an interval wholly
  below −margin is a deficit (reversed);
* ``removes``: a deficit removed "mostly": the fraction 1 − bias(b)/bias(a) removed by run b from
  run a's deficit exceeds `MOST`.
A chain (claims 3, 4) holds when every adjacent pair holds; "at least as good as the best"
(claim 7) is decided by every pair holding (no equivalence margin on FID: its scale depends on
the feature network and on N, so no one margin would mean the same everywhere).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .tables import NET_PREFERENCE, family_of, fid_vs_sampling_steps, fid_vs_training_steps, regularisation_table

log = logging.getLogger(__name__)

#: "Near 0" for a collapsed run's precision and recall (claim 1).
COLLAPSE = 0.05
#: Equivalence margin of an *absent* fine-scale deficit, in dex of mean power ratio: ±0.1 dex is
#: ±26 % power, a third of a factor-2 deficit (0.3 dex) — a deficit the study calls "severe" is
#: larger than a factor 2, so a run inside ±0.1 dex does not have it.
ABSENCE_MARGIN = 0.1
#: "Removes most of" a deficit (claim 11): more than half of it.
MOST = 0.5
#: The two ProjectedGAN baselines the study's ablations can be compared with (study.md §3.1):
#: the longer run of its tables, and the run at the ablations' own budget.
BASELINES = ("full_projectedgan", "full_projectedgan_baseline")
#: ProjectedGAN runs with a frozen, pretrained feature network (claim 7's variants).
FROZEN_PRETRAINED = ("no_cross_scale_mixing", "no_cross_scale_and_no_cross_channel_mixing", "trainable_projections",
                     "efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite3", "discriminator_1",
                     "discriminator_1,2", "discriminator_1,2,3", "augmentations_off")
#: The feature network that is also ProjectedGAN's backbone: its FIDs favour ProjectedGAN.
BACKBONE_NET = "efficientnet_lite0"

VERDICTS = ("holds", "reversed", "inconclusive", "not in this config")
COLUMNS = ["claim", "statement", "source", "baseline", "metric", "net", "comparisons", "measured", "verdict",
           "basis", "published", "published_verdict", "rule", "notes"]


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim: ``kind`` (module docstring) of ``metric`` between run ``a`` and
    run ``b`` (``b`` None for a one-run test), on crop ``crop`` ("" whole frames)."""

    kind: str
    metric: str
    a: str
    b: str | None = None
    crop: str = ""
    net: str | None = None  # None: the claim's network (FID-type metrics); spectra: power_spectrum

    def describe(self) -> str:
        m = self.metric + (f" ({self.crop})" if self.crop else "")
        return {"less": f"{m}: {self.a} < {self.b}",
                "below": f"{m}: {self.a} ≤ {COLLAPSE}",
                "deficit": f"{m}: {self.a} < 0",
                "absence": f"{m}: {self.a} within ±{ABSENCE_MARGIN}",
                "removes": f"{m}: {self.b} removes > {MOST:.0%} of {self.a}'s deficit"}[self.kind]


@dataclass(frozen=True)
class Claim:
    number: int
    statement: str
    source: str
    rule: str
    #: (context, baseline) → comparisons; None baseline for claims that do not use one.
    build: object = field(repr=False)
    per_baseline: bool = False
    metric: str = "fid"
    #: Comparisons that must all be configured (a chain); else the configured ones are judged.
    needs_all: bool = True


class Context:
    """The numbers a claim is judged on: a results.csv (long table of `tables.read_results`),
    optional bootstrap draws (`evaluate.bootstrap.load_draws`), the deciding network."""

    def __init__(self, df: pd.DataFrame, draws: dict | None = None, net: str | None = None,
                 families: dict[str, str] | None = None):
        self.df, self.draws, self.families = df, draws or {}, families or {}
        fid_nets = set(df.loc[(df.metric == "fid") & (df.crop == ""), "net"])
        self.net = net if net else next((n for n in NET_PREFERENCE if n in fid_nets), min(fid_nets, default=None))
        self.runs = set(df["run"])

    def family(self, run: str) -> str:
        return family_of(run, self.families)

    def _row(self, metric, run, crop, net):
        d = self.df
        hit = d[(d.metric == metric) & (d.run == run) & (d.crop == crop) & (d.net == net)]
        return None if hit.empty else hit.iloc[0]

    def value(self, c: Comparison, run: str) -> tuple[float | None, np.ndarray | None]:
        net = c.net or (self.net if not c.metric.startswith("spectral") else "power_spectrum")
        row = self._row(c.metric, run, c.crop, net)
        if row is None or not np.isfinite(row.value):
            return None, None
        return float(row.value), self.draws.get((c.metric, row.real, row.fake, net))

    def best_diffusion(self) -> str | None:
        d = self.df
        fid = d[(d.metric == "fid") & (d.net == self.net) & (d.crop == "")]
        fid = fid[[self.family(r) == "diffusion" for r in fid.run]]
        return None if fid.empty else str(fid.loc[fid.value.idxmin(), "run"])


def _interval(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return (float(np.quantile(x, 0.025)), float(np.quantile(x, 0.975))) if len(x) else (np.nan, np.nan)


def judge(ctx: Context, c: Comparison) -> dict:
    """One comparison → verdict, text of what was measured, and whether it rests on an interval."""
    va, da = ctx.value(c, c.a)
    vb, db = ctx.value(c, c.b) if c.b else (None, None)
    if va is None or (c.b and vb is None):
        missing = c.a if va is None else c.b
        return {"verdict": "not in this config", "measured": f"{c.describe()}: no {c.metric} for {missing}",
                "interval": False, "missing": missing}
    if c.kind in ("less", "removes"):
        point = va - vb if c.kind == "less" else (1 - vb / va if va < 0 else np.nan)
        paired = da is not None and db is not None
        if paired:
            draws = da - db if c.kind == "less" else np.where(da < 0, 1 - db / da, np.nan)
    else:
        point, paired, draws = va, da is not None, da
    lo, hi = _interval(draws) if paired else (point, point)
    if not np.isfinite(point) or not (np.isfinite(lo) and np.isfinite(hi)):
        verdict = "inconclusive"
    elif c.kind == "less":
        verdict = "holds" if hi < 0 else "reversed" if lo > 0 else "inconclusive"
    elif c.kind == "below":
        verdict = "holds" if hi <= COLLAPSE else "reversed" if lo > COLLAPSE else "inconclusive"
    elif c.kind == "deficit":
        verdict = "holds" if hi < 0 else "reversed" if lo > 0 else "inconclusive"
    elif c.kind == "absence":
        verdict = ("holds" if -ABSENCE_MARGIN <= lo and hi <= ABSENCE_MARGIN
                   else "reversed" if hi < -ABSENCE_MARGIN else "inconclusive")
    elif c.kind == "removes":
        verdict = "holds" if lo > MOST else "reversed" if hi < MOST else "inconclusive"
    else:
        raise ValueError(f"unknown comparison kind {c.kind!r}")
    what = {"less": "difference", "removes": "fraction removed"}.get(c.kind, "value")
    vals = f"{c.a} {va:.4g}" + (f", {c.b} {vb:.4g}" if c.b else "")
    ci = f" [{lo:.3g}, {hi:.3g}]" if paired else ""
    return {"verdict": verdict, "measured": f"{c.describe()} — {vals}; {what} {point:.3g}{ci}", "interval": paired,
            "missing": None}


def combine(results: list[dict], needs_all: bool) -> str:
    """A claim's verdict from its comparisons' (module docstring)."""
    configured = [r for r in results if r["verdict"] != "not in this config"]
    if not configured or (needs_all and len(configured) < len(results)):
        return "not in this config"
    verdicts = {r["verdict"] for r in configured}
    if "reversed" in verdicts:
        return "reversed"
    return "holds" if verdicts == {"holds"} else "inconclusive"


# ---- The registry ----------------------------------------------------------------------------

def _c1(ctx, base):
    return [Comparison("less", "fid", base, "unfreeze_feature_network"),
            Comparison("below", "precision", "unfreeze_feature_network"),
            Comparison("below", "recall", "unfreeze_feature_network")]


def _c2(ctx, base):
    return [Comparison("less", "fid", base, "randomly_initialized_feature_network")]


def _c3(ctx, base):
    chain = [base, "discriminator_1,2,3", "discriminator_1,2", "discriminator_1"]
    return [Comparison("less", "fid", a, b) for a, b in zip(chain, chain[1:])]


def _c4(ctx, base):
    chain = [base, "no_cross_scale_mixing", "no_cross_scale_and_no_cross_channel_mixing"]
    return [Comparison("less", "fid", a, b) for a, b in zip(chain, chain[1:])]


def _c5(ctx, base):
    return [Comparison("less", "fid", base, f"efficientnet-lite{i}") for i in (1, 2, 3)]


def _c6(ctx, base):
    return [Comparison("less", "fid", base, "augmentations_off")]


def _c7(ctx, base):
    best = ctx.best_diffusion() or "the best diffusion run"
    variants = [base] + [r for r in FROZEN_PRETRAINED if r in ctx.runs]
    return [Comparison("less", "fid", v, best) for v in variants]


def _c8(ctx, base):
    df = ctx.df[ctx.df.net == ctx.net]
    out = []
    by_s = fid_vs_sampling_steps(df).set_index("S").run
    out.append(Comparison("less", "fid", by_s.get(250, "S=250 (T=1000, 58K)"), by_s.get(50, "S=50 (T=1000, 58K)")))
    by_t = fid_vs_training_steps(df).set_index("T").run
    for t in (125, 4000):
        out.append(Comparison("less", "fid", by_t.get(1000, "T=1000 (best over S, K)"),
                              by_t.get(t, f"T={t} (best over S, K)")))
    reg = regularisation_table(df).set_index("regularisation").run
    flip = reg.get("Random horizontal flip", "h-flip (T=1000, S=250, 58K)")
    for label in ("Dropout=0.3", "No regularization", "Random h-flip + reduced capacity"):
        out.append(Comparison("less", "fid", flip, reg.get(label, f"{label} (T=1000, S=250)")))
    return out


def _c9(ctx, base):
    crops = sorted({c for c in ctx.df.loc[ctx.df.metric == "spectral_bias_high", "crop"] if c})
    out = []
    for crop in ["", *crops]:
        out.append(Comparison("deficit", "spectral_bias_high", "stylegan2", crop=crop))
        out.append(Comparison("absence", "spectral_bias_high", ctx.best_diffusion() or "the best diffusion run",
                              crop=crop))
        out.append(Comparison("absence", "spectral_bias_high", base, crop=crop))
    return out


def _c10(ctx, base):
    # The upper half of the 256-px model's band (k = 64 … 128 cycles per image), where both
    # models have content: `spectral_bias_high_256px` rows (whole frames).
    return [Comparison("less", "spectral_bias_high_256px", "stylegan2", "stylegan2_256", net="power_spectrum")]


def _c11(ctx, base):
    metrics = sorted({m for m in ctx.df.metric if m.startswith("spectral_bias_above_x")})
    metric = metrics[0] if metrics else "spectral_bias_above_x4_nyquist"
    dist = metric.replace("spectral_bias", "spectral_distance")
    return [Comparison("deficit", metric, "msdgan_l1_only"),
            Comparison("removes", metric, "msdgan_l1_only", "msdgan"),
            Comparison("less", dist, "msdgan", "msdgan_discriminator_1")]


_READING = "reading of the published results.csv (study.md §3.1, derived; labelled as such)"
CLAIMS: tuple[Claim, ...] = (
    Claim(1, "A frozen pretrained feature network beats an unfrozen one; unfrozen training collapses "
             "(precision and recall near 0).", _READING,
          f"FID(baseline) < FID(unfreeze_feature_network), and its precision and recall ≤ {COLLAPSE}.",
          _c1, per_baseline=True),
    Claim(2, "A pretrained feature network beats a randomly initialised one (both frozen).", _READING,
          "FID(baseline) < FID(randomly_initialized_feature_network).", _c2, per_baseline=True),
    Claim(3, "More discriminators help: 4 < 3 < 2 < 1 in FID.", _READING,
          "Chain: every adjacent pair holds (baseline has 4).", _c3, per_baseline=True),
    Claim(4, "The random projections help: CCM+CSM < CCM only < none.", _READING,
          "Chain: every adjacent pair holds.", _c4, per_baseline=True),
    Claim(5, "EfficientNet-Lite0 is the best backbone.", _READING,
          "FID(baseline, lite0) < FID(lite1), FID(lite2), FID(lite3): every configured pair holds.", _c5,
          per_baseline=True, needs_all=False),
    Claim(6, "DiffAugment gives a modest gain.", _READING, "FID(baseline) < FID(augmentations_off).", _c6,
          per_baseline=True),
    Claim(7, "ProjectedGAN with a frozen pretrained backbone is at least as good as the best diffusion run.",
          "abstract: 'ProjectedGAN achieves similar improvements within the GAN family'; results.csv: every "
          "such variant has a lower Inception FID (study.md §3.1 point 7)",
          "Every configured frozen-pretrained variant (and the baseline) has a lower FID than the diffusion "
          "run with the lowest FID: every pair holds (no equivalence margin).", _c7, per_baseline=True,
          needs_all=False),
    Claim(8, "Diffusion: 250 sampling steps beat 50; T = 1000 training steps beat 125 and 4000; horizontal "
             "flip beats dropout, none and the small UNet.",
          "reading of the published results.csv (study.md §3.2, the notebook's bar charts and table)",
          "Every configured pair holds (T compared at its best over S and training length, as in the notebook).",
          _c8, needs_all=False),
    Claim(9, "StyleGAN2 has a fine-scale power deficit that diffusion and ProjectedGAN do not have, on whole "
             "frames and on native-resolution crops.",
          "abstract: 'StyleGAN-family models show severe fine-scale deficits when trained at high resolution; "
          "diffusion strongly improves fine-scale generation; ProjectedGAN achieves similar improvements'",
          f"spectral_bias_high(stylegan2) < 0, and for the best diffusion run and the baseline ProjectedGAN the "
          f"interval lies inside ±{ABSENCE_MARGIN} dex (an absence needs an equivalence margin); every configured "
          "comparison holds.", _c9, per_baseline=True, metric="spectral_bias_high", needs_all=False),
    Claim(10, "The deficit appears with training resolution: StyleGAN2 trained at high resolution has a larger "
              "fine-scale deficit than at low resolution, on the same band of physical scales.",
          "abstract: 'severe fine-scale deficits when trained at high resolution'",
          "spectral_bias_high_256px(stylegan2) < spectral_bias_high_256px(stylegan2_256): the upper half of the "
          "256-px model's band, in cycles per image.", _c10, metric="spectral_bias_high_256px"),
    Claim(11, "Conditional GAN (the seed): L1 alone blurs, the LSGAN term removes most of it, three "
              "discriminator scales beat one.",
          "the seed's MSD-GAN study (not the paper)",
          f"bias above the input's Nyquist(msdgan_l1_only) < 0; msdgan removes > {MOST:.0%} of that deficit; "
          "spectral distance above Nyquist(msdgan) < (msdgan_discriminator_1); every configured comparison "
          "holds (three separate statements; the missing ones are named).", _c11,
          metric="spectral_bias_above_x*_nyquist", needs_all=False),
)


def findings_table(ctx: Context, published: Context | None = None, not_converged: dict[str, str] | None = None,
                   claims=CLAIMS) -> pd.DataFrame:
    """One row per claim (per baseline for the claims that compare with one, both where both exist)."""
    not_converged = not_converged or {}
    rows = []
    for claim in claims:
        bases = [b for b in BASELINES if b in ctx.runs] or [BASELINES[0]] if claim.per_baseline else [None]
        for base in bases:
            comps = claim.build(ctx, base)
            results = [judge(ctx, c) for c in comps]
            verdict = combine(results, claim.needs_all)
            notes = []
            missing = sorted({r["missing"] for r in results if r["missing"]})
            if missing:
                notes.append("not configured / no value: " + ", ".join(missing))
            used = {r for c in comps for r in (c.a, c.b) if r}
            stale = [f"{r} not converged ({not_converged[r]})" for r in sorted(used) if r in not_converged]
            notes += stale
            fid_based = any(not c.metric.startswith("spectral") for c in comps)
            if fid_based and ctx.net == BACKBONE_NET:
                notes.append("EfficientNet-Lite0 is also ProjectedGAN's backbone: FIDs on it favour ProjectedGAN; "
                             "not sole evidence")
            configured = [r for r in results if r["verdict"] != "not in this config"]
            basis = ("" if verdict == "not in this config" else
                     "bootstrap 95 % interval of the paired difference" if configured and all(r["interval"] for r in configured)
                     else "point values (no interval: no stored features)")
            pub, pub_verdict = "", ""
            if published is not None:
                pcomps = claim.build(published, base)
                presults = [judge(published, c) for c in pcomps]
                pub_verdict = combine(presults, claim.needs_all)
                pub = "; ".join(r["measured"] for r in presults if r["verdict"] != "not in this config")
            rows.append({"claim": claim.number, "statement": claim.statement, "source": claim.source,
                         "baseline": base or "", "metric": claim.metric,
                         "net": ctx.net if fid_based else "power_spectrum",
                         "comparisons": "; ".join(c.describe() for c in comps),
                         "measured": "; ".join(r["measured"] for r in results if r["verdict"] != "not in this config"),
                         "verdict": verdict, "basis": basis, "published": pub, "published_verdict": pub_verdict,
                         "rule": claim.rule, "notes": "; ".join(notes)})
    return pd.DataFrame(rows, columns=COLUMNS)


_COLOURS = {"holds": "#d9f2d9", "reversed": "#f8d0d0", "inconclusive": "#fff2cc", "not in this config": "#eeeeee"}


def to_html(table: pd.DataFrame, title: str = "Findings") -> str:
    """The findings table as a self-contained HTML page, verdicts coloured."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for _, r in table.iterrows():
        cells = []
        for c in table.columns:
            style = f' style="background:{_COLOURS[r[c]]}"' if c in ("verdict", "published_verdict") and r[c] in _COLOURS else ""
            cells.append(f"<td{style}>{html.escape(str(r[c]))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    rules = (f"<p>Verdicts: <b>holds</b> (every comparison's 95 % interval of the paired difference excludes zero in "
             f"the claimed direction), <b>reversed</b> (one excludes zero the other way), <b>inconclusive</b>, "
             f"<b>not in this config</b> (a run it needs is not configured). Margins fixed in advance: collapse "
             f"≤ {COLLAPSE}; absence of a deficit ±{ABSENCE_MARGIN} dex; 'most' &gt; {MOST:.0%}. Where the basis says "
             f"point values, no interval existed and the sign of the point difference decided.</p>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>table{border-collapse:collapse;font:12px sans-serif}td,th{border:1px solid #ccc;padding:3px;"
            "vertical-align:top}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{rules}<table><tr>{head}</tr>{''.join(body)}</table></body></html>")


def write_findings(results: str | Path, out_csv: str | Path, out_html: str | Path, draws: str | Path | None = None,
                   published: str | Path | None = None, net: str | None = None,
                   families: dict[str, str] | None = None, not_converged: dict[str, str] | None = None) -> pd.DataFrame:
    """results.csv (+ bootstrap draws, + a published results.csv) → findings.csv and findings.html."""
    from ..evaluate.bootstrap import load_draws
    from ..io import atomic_path
    from .tables import read_results

    ctx = Context(read_results(results), load_draws(draws) if draws else None, net, families)
    pub = Context(read_results(published), None, "inception_v3") if published else None
    table = findings_table(ctx, pub, not_converged)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(to_html(table), encoding="utf-8")
    return table

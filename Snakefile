# solargen: the comparative study of generative models on SDO/AIA 193 Å images, end to end.
#   acquire → calibrate → normalise → dataset → train → sample → evaluate → report
# Scale is configuration: config/demo.yaml (laptop), config/ci.yaml (tests), config/config.yaml (paper).

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")


# The embedded default; --configfile (or a profile's configfile) replaces it rather than merging
# into it, so a smaller study never inherits the demo's runs. --config key=value applies on top.
if not workflow.overwrite_configfiles:
    # Snakemake's own message for a YAML syntax error names neither the file nor the line.
    from solargen.io import InputError, read_yaml

    try:
        read_yaml("config/demo.yaml")
    except InputError as e:
        raise WorkflowError(str(e)) from None

    configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/feature_train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/expert.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{OUT}/results.csv",
        list(SOLAR_ENCODERS.values()),
        f"{OUT}/not_run.csv",
        f"{OUT}/results_meta.csv",
        f"{OUT}/tables/spearman.csv",
        f"{OUT}/figures/samples.png",
        f"{OUT}/figures/spectrum.png",
        [f"{OUT}/figures/zoom.png"] if not all(map(is_conditional, RUNS)) else [],
        [f"{OUT}/figures/dft.png"] if any(map(is_conditional, RUNS)) else [],
        report_targets(),
        EXPERT_TARGETS,
        [f"{OUT}/figures/data_summary.png"] if SOURCE in JSOC_SOURCES else [],
        [f"{OUT}/figures/dataset_qa.png"] if SOURCE != "image_folder" else [],

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
include: "workflow/rules/acquire.smk"
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
        final_targets(),

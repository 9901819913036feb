# xvertnet: the XVertNet workflow. Run `snakemake --cores N` (see README.md, "Architecture").
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/demo_data.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/roi.smk"
include: "workflow/rules/prep.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/study.smk"


onstart:
    # The jobs' interpreter must have the package's dependencies (xvertnet.environment): checked once, before any job.
    from snakemake.settings.types import DeploymentMethod
    from xvertnet.environment import job_python_problem

    if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
        problem = job_python_problem(str(SRC))
        if problem:
            print(f"xvertnet workflow: error: {problem}", file=sys.stderr)
            sys.exit(1)


rule all:
    default_target: True
    input:
        PLAN.final_outputs(),

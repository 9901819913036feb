# Input functions for the rules: each asks the plan (xvertnet.plan), which knows the data sets,
# model sets and methods of the configuration. Rule files hold only rules.
import json
import shlex
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
if (SRC / "xvertnet").is_dir():  # this checkout's package, for planning and for the jobs (`python -m xvertnet`)
    sys.path.insert(0, str(SRC))
    shell.prefix(f"export PYTHONPATH={shlex.quote(str(SRC))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from xvertnet.config import validate_config
from xvertnet.io.datasets import SHARD_PATTERN
from xvertnet.plan import Plan, relax_garbage_collection
from xvertnet.provenance import code_fingerprint

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
PLAN = Plan(config)
relax_garbage_collection()  # planning a large data set's jobs: see xvertnet.plan
# This run's outputs (models, enhanced, metrics, tables, study) and logs: results/ and logs/, or
# results/runs/<run>/ and logs/runs/<run>/ for config `run: <run>` (xvertnet.plan).
RUN = PLAN.run_dir
RUN_LOGS = PLAN.run_logs
# The jobs' software with --software-deployment-method conda (the package itself comes from SRC).
ENV = "../../envs/xvertnet.yaml"


wildcard_constraints:
    dataset="|".join(PLAN.datasets) or "no-dataset",
    shard=SHARD_PATTERN,
    iteration=r"[1-9][0-9]*",
    model_set="|".join(PLAN.model_sets) or "no-model-set",
    collection="metrics|study",


def as_json(value):
    return json.dumps(value, sort_keys=True)


def section(name):
    """A config section as the JSON of `--settings`."""
    return as_json(config[name])


def threads(rule):
    return config["threads"].get(rule, config["threads"]["default"])


def manifest_files(w):
    """Every data set's manifest, as an input of the rules that read them (`--manifests`): a changed
    manifest reruns them, and none starts before its manifests exist."""
    return list(PLAN.manifests().values())


def training_manifest_files(w):
    """The manifests of the data sets models train on: a training rule's input (an `enhance_only` data set's
    manifest changing, e.g. a user adding images, must not retrain anything)."""
    return list(PLAN.manifests(training_only=True).values())


def shard_names(dataset):
    """Shard names of a data set, known once the `shard` checkpoint has run."""
    folder = checkpoints.shard.get(dataset=dataset).output[0]
    return sorted(path.stem for path in Path(folder).glob("shard-*.csv"))


def stage_shards(stage):
    return lambda w: [PLAN.stage_shard(w.dataset, stage, shard) for shard in shard_names(w.dataset)]


def reject_reports(w):
    return [
        f"results/{w.dataset}/{stage}/{shard}.rejects.csv"
        for stage in ("ingest", "roi")
        for shard in shard_names(w.dataset)
    ]


def enhanced_of_method(w):
    return [PLAN.enhanced(w.dataset, w.method, shard) for shard in shard_names(w.dataset)]


def enhance_method(w):
    return PLAN.enhance_method(w.method, w.dataset, w.shard)[0]


def enhance_settings(w):
    return as_json(PLAN.enhance_method(w.method, w.dataset, w.shard)[1])


def collection_csvs(w):
    return PLAN.metric_csvs(PLAN.collection_methods(w.collection), shard_names)


def collection_enhanced(w):
    return PLAN.enhanced_shards(PLAN.collection_methods(w.collection), shard_names)

# Input functions and config access for every rule; rule files hold only rules.
import json
import shlex
from pathlib import Path

from xvertnet.config import VARIANT_KEYS, variant_settings, validate_config
from xvertnet.datasets import SHARD_PATTERN
from xvertnet.provenance import code_fingerprint

validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

DATASETS = {entry["name"]: entry for entry in config["datasets"]}


wildcard_constraints:
    dataset="|".join(DATASETS) or "no-dataset",
    shard=SHARD_PATTERN,
    iteration=r"[1-9][0-9]*",

BASELINES = ["original", *config["baselines"]["methods"]]
TRAINED_BASELINES = ["zerodce", "madmad"]
ARCHITECTURE_KEYS = ("base_width", "depth", "gl_weight", "output_head")

# XVertNet configurations. A "model set" is a chain of trained iterations in
# results/models/<set>/iter<t>; an "entry" is an enhancing method (a folder in
# results/enhanced/): the comparison tables' methods (config `xvertnet`) and the study's
# variants (study-<variant>-T<t>). Entries whose training settings are equal share a model
# set (the one named first), and entry <variant>-T1 reuses iteration 1 of <variant>'s set.
MODEL_SETS = {}
XVERTNET_ENTRIES = {}


def train_settings(settings):
    """A full `train` section as the settings of `xvertnet train`: `iterations` (so that changing
    the number of iterations retrains no existing one) and `internal` left out, the
    architecture keys grouped as the model."""
    train = {k: v for k, v in settings.items() if k not in ("iterations", *VARIANT_KEYS)}
    architecture = {key: train.pop(key) for key in ARCHITECTURE_KEYS}
    train["model"] = {**architecture, "in_channels": len(train["inputs"])}
    return train


def _training_key(settings):
    return json.dumps(train_settings(settings), sort_keys=True)


def _add_entry(entry, set_name, overrides, iterations=None):
    settings = variant_settings(config, overrides)
    iterations = iterations or settings["iterations"]
    model_set = None
    if not settings["internal"]:
        key = _training_key(settings)
        model_set = next((name for name, known in MODEL_SETS.items() if known["key"] == key), set_name)
        known = MODEL_SETS.setdefault(model_set, {"key": key, "settings": settings, "iterations": 0})
        known["iterations"] = max(known["iterations"], iterations)
    XVERTNET_ENTRIES[entry] = {"settings": settings, "model_set": model_set, "iterations": iterations}


XVERTNET_METHODS = list(config["xvertnet"])
for _name, _overrides in config["xvertnet"].items():
    _add_entry(_name, _name, _overrides)
STUDY_ENTRIES = []
for _variant, _overrides in config["study"]["variants"].items():
    _total = variant_settings(config, _overrides)["iterations"]
    for _t in range(1, _total + 1) if config["study"]["each_iteration"] else [_total]:
        _entry = f"study-{_variant}-T{_t}" if config["study"]["each_iteration"] else f"study-{_variant}"
        _add_entry(_entry, f"study-{_variant}", _overrides, _t)
        STUDY_ENTRIES.append(_entry)
# The study's methods: its entries and the references they are judged against.
STUDY_METHODS = [*STUDY_ENTRIES, *[m for m in config["study"]["references"] if m not in STUDY_ENTRIES]]
# Every baseline some target enhances with: the comparison's and the study's references.
ENHANCING_BASELINES = [*BASELINES, *[m for m in config["study"]["references"] if m not in BASELINES]]


def study_paper_entry():
    """--paper-entry option: the study entry with the paper's recipe at the configured T, if any."""
    paper_key = _training_key(variant_settings(config, {}))
    for entry in reversed(STUDY_ENTRIES):
        known = XVERTNET_ENTRIES[entry]
        if known["model_set"] and MODEL_SETS[known["model_set"]]["key"] == paper_key and known["iterations"] == config["train"]["iterations"]:
            return f"--paper-entry {entry}"
    return ""


_clash = sorted(set(XVERTNET_ENTRIES) & set(BASELINES))
if _clash:
    raise ValueError(f"config key 'xvertnet': {_clash} are baseline names; name XVertNet configurations differently")


def manifest_path(dataset):
    """The data set's manifest: built by demo_data or download, or the path given in the config."""
    source = DATASETS[dataset]["manifest"]
    if source == "demo":
        return f"results/{dataset}/raw/manifest.csv"
    if source == "download":
        return f"results/{dataset}/download/manifest.csv"
    return source


def get_manifest(wildcards):
    return manifest_path(wildcards.dataset)


def download_options(wildcards):
    """Options of `xvertnet download` from the data set's config entry."""
    entry = DATASETS[wildcards.dataset]
    options = [f"--registry {entry.get('registry', wildcards.dataset)}", f"--seed {entry['split_seed']}"]
    if entry.get("archive"):
        options.append(f"--archive {entry['archive']}")
    if entry.get("base_url"):
        options.append(f"--base-url {entry['base_url']}")
    return " ".join(options)


def get_shard_size(wildcards):
    return DATASETS[wildcards.dataset].get("shard_size", config["ingest"]["shard_size"])


def shard_names(dataset):
    """Shard names of a data set, known once the `shards` checkpoint has run."""
    folder = checkpoints.shards.get(dataset=dataset).output[0]
    return sorted(path.stem for path in Path(folder).glob("shard-*.csv"))


def get_shard_names(wildcards):
    return shard_names(wildcards.dataset)


def get_roi_shards(wildcards):
    return [f"results/{wildcards.dataset}/roi/{shard}.h5" for shard in get_shard_names(wildcards)]


def get_reject_reports(wildcards):
    shards = get_shard_names(wildcards)
    return [f"results/{wildcards.dataset}/{stage}/{shard}.rejects.csv" for stage in ("ingest", "roi") for shard in shards]


def roi_cli_options():
    """The `roi` section of the config as options of `xvertnet roi`."""
    roi = config["roi"]
    return (
        f"--canonical-height {roi['canonical_height']} "
        f"--train-size {roi['train_size'][0]} {roi['train_size'][1]} "
        f"--eval-size {roi['eval_size'][0]} {roi['eval_size'][1]} "
        f"--spine-width-fraction {roi['spine_width_fraction']} "
        f"--search-fraction {roi['search_fraction']} --max-step {roi['max_step']} "
        f"--upper-fraction {roi['upper_fraction']} --lower-fraction {roi['lower_fraction']} "
        f"--lung-contrast {roi['lung_contrast']} --qc-max {roi['qc_max_per_shard']}"
    )


def get_prep_shards(wildcards):
    return [f"results/{wildcards.dataset}/prep/{shard}.h5" for shard in get_shard_names(wildcards)]


def prep_cli_options():
    """The `prep` section of the config as options of `xvertnet prep`."""
    prep = config["prep"]
    return (
        f"--lambda {prep['lambda']} --alpha {prep['alpha']} --eps {prep['eps']} --log-floor {prep['log_floor']} "
        f"--solver {prep['solver']} --rtol {prep['rtol']} --fgs-iterations {prep['fgs_iterations']} "
        f"--fgs-lambda-factor {prep['fgs_lambda_factor']} --e-floor {prep['e_floor']} "
        + ("--rescale-xp" if prep["rescale_xp"] else "--no-rescale-xp")
    )


def data_shard(dataset, shard, iteration, model_set=None):
    """Iteration `iteration`'s data shard: prep for 0, the refine output of that model after."""
    if iteration == 0:
        return f"results/{dataset}/prep/{shard}.h5"
    return f"results/{dataset}/refine/{model_set}/iter{iteration}/{shard}.h5"


def get_train_data(wildcards):
    """Iteration t trains on iteration t-1's data shards of every data set."""
    previous = int(wildcards.iteration) - 1
    return [data_shard(dataset, shard, previous, wildcards.model_set) for dataset in DATASETS for shard in shard_names(dataset)]


def get_refine_input(wildcards):
    return data_shard(wildcards.dataset, wildcards.shard, int(wildcards.iteration) - 1, wildcards.model_set)


def model_dirs(model_set, iterations):
    return [f"results/models/{model_set}/iter{t}" for t in range(1, iterations + 1)]


def get_xvertnet_inputs(wildcards):
    """The models of a trained entry, or the images' own prep shard for internal learning."""
    entry = XVERTNET_ENTRIES[wildcards.method]
    if entry["model_set"] is None:
        return [f"results/{wildcards.dataset}/prep/{wildcards.shard}.h5"]
    return [f"{folder}/model.json" for folder in model_dirs(entry["model_set"], entry["iterations"])]


def xvertnet_enhance_options(wildcards):
    """`xvertnet enhance-shard` options of an XVertNet entry."""
    entry = XVERTNET_ENTRIES[wildcards.method]
    if entry["model_set"] is None:
        settings = train_settings(entry["settings"])
        return (f"--internal {shlex.quote(json.dumps(settings, sort_keys=True))} --iterations {entry['iterations']}"
                f" --prep results/{wildcards.dataset}/prep/{wildcards.shard}.h5")
    return "--models " + " ".join(model_dirs(entry["model_set"], entry["iterations"]))


def xvertnet_settings_record(wildcards):
    """What an entry's enhancement depends on besides its input files (reruns it when changed)."""
    entry = XVERTNET_ENTRIES[wildcards.method]
    return json.dumps({"internal": entry["model_set"] is None, "iterations": entry["iterations"],
                       "settings": train_settings(entry["settings"]) if entry["model_set"] is None else None}, sort_keys=True)


def get_enhanced_shards(wildcards):
    return [f"results/enhanced/{wildcards.method}/{wildcards.dataset}/{shard}.h5" for shard in get_shard_names(wildcards)]


def baseline_params(method):
    """A baseline's config section as JSON (none for 'original'; the `prep` section for 'preprocessed')."""
    if method == "preprocessed":
        from xvertnet.preprocess import PrepParams

        return json.dumps({key: config["prep"][key] for key in PrepParams().record()}, sort_keys=True)
    return json.dumps(config["baselines"].get(method, {}), sort_keys=True)


def get_baseline_train_data(wildcards):
    """Zero-DCE trains on the training crops of every data set; Madmad on synthetic data only."""
    if wildcards.method == "madmad":
        return []
    return [data_shard(dataset, shard, 0) for dataset in DATASETS for shard in shard_names(dataset)]


def get_baseline_model(wildcards):
    if wildcards.method in TRAINED_BASELINES:
        return [f"results/models/baselines/{wildcards.method}/model.json"]
    return []


def baseline_model_option(wildcards):
    if wildcards.method in TRAINED_BASELINES:
        return f"--baseline-model results/models/baselines/{wildcards.method}"
    return ""


def train_settings_json(wildcards):
    return json.dumps(train_settings(MODEL_SETS[wildcards.model_set]["settings"]), sort_keys=True)


ALL_METHODS = [*XVERTNET_METHODS, *BASELINES]


def enhanced_path(dataset, method, shard):
    return f"results/enhanced/{method}/{dataset}/{shard}.h5"


def metric_cli_options():
    metrics = config["metrics"]
    return (f"--lpc-sigma-onf {metrics['lpc_sigma_onf']} --tc-intensity-scale {metrics['tc_intensity_scale']} "
            f"--cnr-band {metrics['cnr_band']}")


def metric_csvs(methods):
    return [f"results/metrics/{dataset}/{method}/{shard}.csv"
            for dataset in DATASETS for method in methods for shard in shard_names(dataset)]


def enhanced_files(methods):
    return [enhanced_path(dataset, method, shard) for dataset in DATASETS for method in methods for shard in shard_names(dataset)]


def enhanced_method_specs(methods):
    """dataset:method:path entries for `xvertnet aggregate-metrics`."""
    return " ".join(f"{dataset}:{method}:{enhanced_path(dataset, method, shard)}"
                    for dataset in DATASETS for method in methods for shard in shard_names(dataset))


def get_metric_csvs(wildcards):
    return metric_csvs(ALL_METHODS)


def get_all_enhanced(wildcards):
    return enhanced_files(ALL_METHODS)


def enhanced_specs(wildcards):
    return enhanced_method_specs(ALL_METHODS)


def method_path_specs(methods):
    """method:path entries for the figures of `xvertnet tables` and `xvertnet study-report`."""
    return " ".join(f"{method}:{enhanced_path(dataset, method, shard)}"
                    for dataset in DATASETS for method in methods for shard in shard_names(dataset))


def panel_specs(wildcards):
    return method_path_specs(ALL_METHODS)


def manifest_specs():
    return " ".join(f"{dataset}:{manifest_path(dataset)}" for dataset in DATASETS)


def get_manifests(wildcards):
    return [manifest_path(dataset) for dataset in DATASETS]


def get_final_outputs():
    outputs = []
    for name in DATASETS:
        outputs += [f"results/{name}/roi/index.csv", f"results/{name}/prep/summary.csv"]
        outputs += [f"results/enhanced/{method}/{name}/index.csv" for method in ALL_METHODS]
    outputs += ["results/metrics/per_roi.csv", "results/tables/comparison.md", "results/figures/boxplots.png",
                "results/figures/panel.png"]
    return outputs

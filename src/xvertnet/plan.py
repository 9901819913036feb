"""What the workflow runs for a configuration: data sets, model sets, methods, and every job's inputs and settings.

The Snakefile builds one :class:`Plan` from the validated config; its input functions ask
the plan (``workflow/rules/common.smk``). Paths of every output follow one layout:

    results/{dataset}/{stage}/{shard}.h5                 ingest, roi, prep (shared by every run)
    RUN/{dataset}/refine/{model_set}/iter{t}/{shard}.h5  refine (data of iteration t + 1)
    RUN/models/{model_set}/iter{t}/                      a trained XVertNet iteration (published)
    RUN/models/{model_set}/iter{t}/training/             what its training job wrote (model, log, curve)
    RUN/models/baselines/{method}/                       a trained baseline (published; training/ likewise)
    RUN/enhanced/{method}/{dataset}/{shard}.h5           every method's enhanced ROIs
    RUN/metrics/{dataset}/{method}/{shard}.csv           their measures
    RUN/metrics/per_roi.csv, RUN/tables/, RUN/figures/   the comparison; RUN/study/ the design study

``RUN`` is ``results`` for an unnamed run and ``results/runs/<run>`` for config ``run: <run>``,
so two configurations never overwrite each other's models or tables. A training job writes to
``training/``; the ``publish_model`` job copies the model up only once training succeeded, so a
failed (re)training leaves the previous model in place.

Terms. A *model set* is a chain of trained iterations (``results/models/<set>/iter<t>``).
An *entry* is an XVertNet configuration that enhances under its own name: the comparison
tables' rows (config ``xvertnet``) and the study's variants (``study-<variant>-T<t>``).
Entries whose training settings are equal share one model set (the one named first), and
entry ``<variant>-T1`` reuses iteration 1 of ``<variant>``'s set. An entry with
``internal: true`` trains on each image it enhances and has no model set.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from pathlib import Path

from xvertnet.config import VARIANT_KEYS, variant_settings
from xvertnet.errors import ConfigError

RESULTS = "results"
#: Keys of an XVertNet configuration that plan it rather than set a training run.
PLANNING_KEYS = ("iterations", *VARIANT_KEYS)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def relax_garbage_collection() -> None:
    """Make Python's cycle collector cheap in the Snakemake process that plans the workflow (common.smk).

    Planning keeps every job alive until the end: hundreds of thousands of objects (jobs, their files,
    wildcards and params) with hardly a reference cycle among them, on top of the modules the planning
    imports (torch among them, through the method registry). Under the default thresholds (700, 10, 10)
    the collector rescans them again and again: about 15 % of the CPU time of a dry run at NIH scale
    (benchmarks/dag_scale.py). The objects existing now (modules, config, plan) are frozen out of its
    scans, and it runs every 100,000 net allocations rather than every 700: cycles are still collected,
    in larger batches. The jobs run in processes of their own and are not affected.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class Plan:
    """Everything the rules need to know, computed once from a validated config."""

    def __init__(self, config: dict):
        from xvertnet.method_catalogue import CATALOGUE as REGISTRY  # the registry's traits, without importing torch

        self.config = config
        run = config.get("run", "")
        #: Where this run's models, enhanced images, metrics and tables go; its logs go to ``run_logs``.
        self.run_dir = f"{RESULTS}/runs/{run}" if run else RESULTS
        self.run_logs = f"logs/runs/{run}" if run else "logs"
        self.datasets: dict[str, dict] = {entry["name"]: entry for entry in config["datasets"]}
        #: Data sets models train on (an ``enhance_only`` data set is only enhanced and measured).
        self.training_datasets = [name for name, entry in self.datasets.items() if not entry.get("enhance_only", False)]
        self.baselines: list[str] = ["original", *config["baselines"]["methods"]]
        self.model_sets: dict[str, dict] = {}
        self.entries: dict[str, dict] = {}
        self.xvertnet_methods: list[str] = list(config["xvertnet"])
        for name, overrides in config["xvertnet"].items():
            self._add_entry(name, name, overrides)
        self.study_entries: list[str] = []
        #: Per study entry: its variant, training seed and iteration (``study.seeds``: one model set per seed).
        self.study_variants: dict[str, dict] = {}
        study = config["study"]
        seeds = study.get("seeds") or [None]
        for variant, overrides in study["variants"].items():
            total = self.variant_settings(overrides)["iterations"]
            for seed in seeds:
                # with seeds, the seed is a training setting of its own model set: study-<variant>-s<seed>
                name = f"study-{variant}" if seed is None else f"study-{variant}-s{seed}"
                seeded = overrides if seed is None else {**overrides, "seed": seed}
                for t in range(1, total + 1) if study["each_iteration"] else [total]:
                    entry = f"{name}-T{t}" if study["each_iteration"] else name
                    self._add_entry(entry, name, seeded, t)
                    self.study_entries.append(entry)
                    self.study_variants[entry] = {
                        "variant": variant,
                        "seed": self.variant_settings(seeded).get("seed", 0),
                        "iteration": t,
                    }
        self.study_methods = [*self.study_entries, *[m for m in study["references"] if m not in self.study_entries]]
        #: Every baseline some target enhances with: the comparison's and the study's references.
        self.enhancing_baselines = [
            *self.baselines,
            *[m for m in study["references"] if m not in self.baselines and m not in self.entries],
        ]
        unknown = sorted(set(self.enhancing_baselines) - set(REGISTRY))
        if unknown:
            raise ConfigError("study.references", f"{unknown} are neither methods nor study entries")
        self.trained_baselines = [m for m in self.enhancing_baselines if REGISTRY[m].trainable]
        self._uses_training_crops = {m: REGISTRY[m].uses_training_crops for m in self.trained_baselines}
        self.methods: list[str] = [*self.xvertnet_methods, *self.baselines]
        if (
            not self.training_datasets
        ):  # the comparison's rows must not need training (the study is only built when asked for)
            comparison_sets = {self.entries[entry]["model_set"] for entry in self.xvertnet_methods} - {None}
            untrained = sorted(
                {*comparison_sets, *[m for m in self.baselines if self._uses_training_crops.get(m, False)]}
            )
            if untrained:
                raise ConfigError(
                    "datasets",
                    f"every data set is enhance_only, so nothing can train {untrained}: give "
                    "`models: <folder>` to the XVertNet entries and leave trained baselines out of baselines.methods",
                )
        clash = sorted(set(self.entries) & set(REGISTRY))
        if clash:
            raise ConfigError(
                "xvertnet", f"{clash} are names of registered methods; name XVertNet configurations differently"
            )

    # -- XVertNet configurations -----------------------------------------------------------

    def variant_settings(self, overrides: dict) -> dict:
        """A configuration's full flat `train` settings and planning keys: `train` with its overrides."""
        return variant_settings(self.config, overrides)

    @staticmethod
    def train_settings(settings: dict) -> dict:
        """The settings of one training run (``xvertnet train --settings``): the planning keys left out,
        so that changing the number of iterations retrains no existing one."""
        return {key: value for key, value in settings.items() if key not in PLANNING_KEYS}

    def _add_entry(self, entry: str, set_name: str, overrides: dict, iterations: int | None = None) -> None:
        settings = self.variant_settings(overrides)
        iterations = iterations or settings["iterations"]
        model_set = None
        if settings["models"]:
            found = self._existing_models(entry, settings["models"], iterations)
            self.entries[entry] = {"settings": settings, "model_set": None, "iterations": len(found), "models": found}
            return
        if not settings["internal"]:
            key = _json(self.train_settings(settings))
            model_set = next((name for name, known in self.model_sets.items() if known["key"] == key), set_name)
            known = self.model_sets.setdefault(model_set, {"key": key, "settings": settings, "iterations": 0})
            known["iterations"] = max(known["iterations"], iterations)
        self.entries[entry] = {"settings": settings, "model_set": model_set, "iterations": iterations, "models": None}

    @staticmethod
    def _existing_models(entry: str, folder: str, iterations: int) -> list[str]:
        """The first ``iterations`` trained iterations in ``folder`` (iter1/model.json, ...), checked now."""
        from xvertnet.config import SHIPPED_MODELS

        folder = str(SHIPPED_MODELS) if folder == "shipped" else folder
        found = []
        for t in range(1, iterations + 1):
            if not (Path(folder) / f"iter{t}" / "model.json").is_file():
                break
            found.append(str(Path(folder) / f"iter{t}"))
        if not found:
            raise ConfigError(
                f"xvertnet.{entry}.models", f"{folder}: no trained iteration here (expected iter1/model.json)"
            )
        return found

    def study_paper_entry(self) -> str | None:
        """The study entry with the paper's recipe (no overrides) at the configured T, if any."""
        paper_key = _json(self.train_settings(self.variant_settings({})))
        for entry in reversed(self.study_entries):
            known = self.entries[entry]
            if (
                known["model_set"]
                and self.model_sets[known["model_set"]]["key"] == paper_key
                and known["iterations"] == self.config["train"]["iterations"]
            ):
                return entry
        return None

    # -- paths -------------------------------------------------------------------------------

    def manifest(self, dataset: str) -> str:
        """The data set's manifest: built by demo_data or download, or the path given in the config."""
        source = self.datasets[dataset]["manifest"]
        if source == "demo":
            return f"{RESULTS}/{dataset}/raw/manifest.csv"
        if source == "download":
            return f"{RESULTS}/{dataset}/download/manifest.csv"
        return source

    def manifests(self, *, training_only: bool = False) -> dict[str, str]:
        """{data set: manifest path}; with ``training_only``, of the data sets models train on (not ``enhance_only``)."""
        return {
            dataset: self.manifest(dataset) for dataset in (self.training_datasets if training_only else self.datasets)
        }

    @staticmethod
    def stage_shard(dataset: str, stage: str, shard: str) -> str:
        return f"{RESULTS}/{dataset}/{stage}/{shard}.h5"

    def data_shard(self, dataset: str, shard: str, iteration: int, model_set: str | None = None) -> str:
        """Iteration ``iteration``'s data shard: prep for 0, the refine output of that model set after."""
        if iteration == 0:
            return self.stage_shard(dataset, "prep", shard)
        return f"{self.run_dir}/{dataset}/refine/{model_set}/iter{iteration}/{shard}.h5"

    def model_dir(self, model_set: str, iteration: int) -> str:
        return f"{self.run_dir}/models/{model_set}/iter{iteration}"

    def model_dirs(self, model_set: str, iterations: int) -> list[str]:
        return [self.model_dir(model_set, t) for t in range(1, iterations + 1)]

    def baseline_model_dir(self, method: str) -> str:
        return f"{self.run_dir}/models/baselines/{method}"

    def enhanced(self, dataset: str, method: str, shard: str) -> str:
        return f"{self.run_dir}/enhanced/{method}/{dataset}/{shard}.h5"

    def metric_csv(self, dataset: str, method: str, shard: str) -> str:
        return f"{self.run_dir}/metrics/{dataset}/{method}/{shard}.csv"

    def segmentation_csv(self, method: str) -> str:
        return f"{self.run_dir}/segmentation/{method}.csv"

    # -- job inputs and settings (``shards`` maps a data set to its shard names) --------------

    def shard_settings(self, dataset: str) -> dict:
        ingest = self.config["ingest"]
        return {"shard_size": self.datasets[dataset].get("shard_size", ingest["shard_size"])}

    def train_inputs(self, model_set: str, iteration: int, shards: Callable[[str], list[str]]) -> list[str]:
        """Iteration t trains on iteration t-1's data shards of every data set."""
        return [
            self.data_shard(dataset, shard, iteration - 1, model_set)
            for dataset in self.training_datasets
            for shard in shards(dataset)
        ]

    def model_set_settings(self, model_set: str) -> dict:
        return self.train_settings(self.model_sets[model_set]["settings"])

    def baseline_train_inputs(self, method: str, shards: Callable[[str], list[str]]) -> list[str]:
        """Baselines that learn from the training crops train on every data set's prep shards (Madmad: synthetic data)."""
        if not self._uses_training_crops.get(method, False):
            return []
        return [self.data_shard(dataset, shard, 0) for dataset in self.training_datasets for shard in shards(dataset)]

    def baseline_settings(self, method: str) -> dict:
        """A baseline's parameters: its config section (the `prep` section for 'preprocessed')."""
        if method == "preprocessed":
            from xvertnet.preprocessing.preprocess import PrepParams

            return PrepParams.from_config(self.config["prep"]).record()
        return dict(self.config["baselines"].get(method, {}))

    def enhance_inputs(self, method: str, dataset: str, shard: str) -> dict[str, list[str] | str]:
        """Inputs of ``enhance_shard``: the ROI shard, and the models (or, internal learning, the prep shard)."""
        inputs: dict[str, list[str] | str] = {"roi": self.stage_shard(dataset, "roi", shard), "models": []}
        entry = self.entries.get(method)
        if entry is None:
            if method in self.trained_baselines:
                inputs["models"] = [f"{self.baseline_model_dir(method)}/model.json"]
        elif self.entry_model_dirs(method) is None:
            inputs["models"] = [self.stage_shard(dataset, "prep", shard)]
        else:
            inputs["models"] = [f"{folder}/model.json" for folder in self.entry_model_dirs(method)]
        return inputs

    def entry_model_dirs(self, entry: str) -> list[str] | None:
        """The iterations an XVertNet entry applies: trained here, or given (``models``); None for internal learning."""
        known = self.entries[entry]
        if known["models"]:
            return known["models"]
        return self.model_dirs(known["model_set"], known["iterations"]) if known["model_set"] else None

    def enhance_method(self, method: str, dataset: str, shard: str) -> tuple[str, dict]:
        """(registered method, its settings) with which ``method`` enhances a shard."""
        entry = self.entries.get(method)
        if entry is None:
            return method, self.baseline_settings(method)
        enhance = self.config["enhance"]
        common = {"device": enhance["device"], "tile": enhance["tile"], "overlap": enhance["overlap"]}
        models = self.entry_model_dirs(method)
        steps = {
            key: [{"method": name, "settings": self.baseline_settings(name)} for name in entry["settings"][key]]
            for key in ("before", "then")
            if entry["settings"][key]
        }
        if models is None:
            return "xvertnet-internal", {
                **common,
                "train": self.train_settings(entry["settings"]),
                "iterations": entry["iterations"],
                "prep": self.stage_shard(dataset, "prep", shard),
                **steps,
            }
        return "xvertnet-chain", {**common, "models": models, "iterations": entry["iterations"], **steps}

    def measure_splits(self, dataset: str) -> list[str]:
        """Splits measured and compared: every split of an ``enhance_only`` data set, else config ``enhance.splits``."""
        if self.datasets[dataset].get("enhance_only", False):
            return ["train", "val", "test"]
        return list(self.config["enhance"]["splits"])

    @property
    def segmentation_task(self) -> bool:
        """Whether the comparison gets the segmentation task's rows (config ``segmentation_task.enabled``)."""
        return bool(self.config["segmentation_task"]["enabled"])

    def enhance_splits(self, dataset: str) -> list[str]:
        """Splits enhanced: those measured, those the segmentation task trains on when it is enabled, and
        (a data set with labels) those of the classifier check."""
        splits = self.measure_splits(dataset)
        extra = list(self.config["segmentation_task"]["train_splits"]) if self.segmentation_task else []
        if dataset in self.labelled_datasets:
            extra += [*self.config["classifier_check"]["train_splits"], *self.config["classifier_check"]["test_splits"]]
        return splits + [split for split in dict.fromkeys(extra) if split not in splits]

    # -- the classifier check (data sets with labels) ------------------------------------------

    @property
    def labelled_datasets(self) -> list[str]:
        return [name for name, entry in self.datasets.items() if entry.get("labels")]

    @property
    def classified_methods(self) -> list[str]:
        """The comparison's methods that enhance whole images (the classifier sees whole radiographs)."""
        from xvertnet.method_catalogue import CATALOGUE as REGISTRY

        return [method for method in self.methods if method in self.entries or REGISTRY[method].whole_images]

    def classifier_csv(self, dataset: str, method: str) -> str:
        return f"{self.run_dir}/classifier/{dataset}/{method}.csv"

    def classifier_csvs(self) -> list[str]:
        return [
            self.classifier_csv(dataset, method)
            for dataset in self.labelled_datasets
            for method in self.classified_methods
        ]

    def enhance_model_option(self, method: str) -> str:
        return f"--model-dir {self.baseline_model_dir(method)}" if method in self.trained_baselines else ""

    def enhanced_shards(self, methods, shards: Callable[[str], list[str]]) -> list[str]:
        return [
            self.enhanced(dataset, method, shard)
            for dataset in self.datasets
            for method in methods
            for shard in shards(dataset)
        ]

    def enhanced_specs(self, methods, shards: Callable[[str], list[str]]) -> list[str]:
        """``dataset:method:path`` of every enhanced shard of ``methods`` (rule ``led_report``)."""
        return [
            f"{dataset}:{method}:{self.enhanced(dataset, method, shard)}"
            for dataset in self.datasets
            for method in methods
            for shard in shards(dataset)
        ]

    def metric_csvs(self, methods, shards: Callable[[str], list[str]]) -> list[str]:
        return [
            self.metric_csv(dataset, method, shard)
            for dataset in self.datasets
            for method in methods
            for shard in shards(dataset)
        ]

    def segmentation_csvs(self, collection: str) -> list[str]:
        """The segmentation task's tables of a per-ROI table's methods (the comparison's or the study's), when enabled."""
        return (
            [self.segmentation_csv(method) for method in self.collection_methods(collection)]
            if self.segmentation_task
            else []
        )

    def segmentation_inputs(self, method: str, shards: Callable[[str], list[str]]) -> dict[str, list[str]]:
        """Every enhanced shard of ``method`` and, in the same order, the ROI shard it was enhanced from."""
        pairs = [(dataset, shard) for dataset in self.datasets for shard in shards(dataset)]
        return {
            "enhanced": [self.enhanced(dataset, method, shard) for dataset, shard in pairs],
            "roi": [self.stage_shard(dataset, "roi", shard) for dataset, shard in pairs],
        }

    def collection_methods(self, collection: str) -> list[str]:
        """The methods of a per-ROI table: ``metrics`` (the comparison) or ``study`` (the design study)."""
        return {"metrics": self.methods, "study": self.study_methods}[collection]

    def study_model_records(self) -> dict[str, list[str]]:
        """Per study entry, the model.json of every iteration it applies (none for internal learning)."""
        return {
            entry: [f"{folder}/model.json" for folder in self.entry_model_dirs(entry) or []]
            for entry in self.study_entries
        }

    def study_observer_entries(self) -> dict[str, dict]:
        """Per study entry with trained models: how it enhances (registered method and settings, as the enhance
        stage gets them) and its variant, seed and iteration (rule ``study_observer``). Internal learning, which
        trains on every image it enhances, is left out."""
        found = {}
        for entry in self.study_entries:
            if self.entry_model_dirs(entry) is None:
                continue
            method, settings = self.enhance_method(entry, next(iter(self.datasets)), "")
            found[entry] = {"method": method, "settings": settings, **self.study_variants[entry]}
        return found

    def study_entry_settings(self) -> dict[str, dict]:
        return {entry: self.entries[entry]["settings"] for entry in self.study_entries}

    def final_outputs(self) -> list[str]:
        outputs = []
        for name in self.datasets:
            outputs += [f"{RESULTS}/{name}/roi/index.csv", f"{RESULTS}/{name}/prep/summary.csv"]
            outputs += [f"{self.run_dir}/enhanced/{method}/{name}/index.csv" for method in self.methods]
        run = self.run_dir
        outputs += [
            f"{run}/metrics/per_roi.csv",
            f"{run}/tables/comparison.md",
            f"{run}/figures/boxplots.png",
            f"{run}/figures/panel.png",
            f"{run}/gallery",
        ]
        if self.labelled_datasets:
            outputs.append(f"{run}/tables/classifier.md")
        if "lut-mapping" in self.baselines:
            outputs += [self.lut_maps_dir(dataset) for dataset in self.datasets]
        if "led" in self.baselines:
            outputs.append(f"{run}/led/led.md")
        return outputs

    def lut_maps_dir(self, dataset: str) -> str:
        """The LUT mapping's interpretable-map figures of a data set's test images (rule ``lut_maps``)."""
        return f"{self.run_dir}/figures/lut_maps/{dataset}"

"""Rule ``led_report``: LED's paired restoration table, its hallucination checks and the worst cases (docs/baselines.md ("LED"))."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument(
        "--enhanced", nargs="+", required=True, help="DATASET:METHOD:SHARD.h5 for every method's enhanced shards"
    )
    parser.add_argument("--manifests", required=True, help="{dataset: manifest path} as JSON, or @file")
    parser.add_argument(
        "--model-dir", required=True, type=Path, help="LED's model folder (its degradation G is checked too)"
    )
    parser.add_argument("--settings", help="the config section baselines.led as JSON, or @file")
    parser.add_argument("--splits", nargs="+", default=["test"])
    parser.add_argument("--out-dir", required=True, type=Path)


def run(args) -> int:
    from xvertnet.io.datasets import read_manifest
    from xvertnet.methods import get_method
    from xvertnet.reporting.led_report import DEGRADATION, load_outputs, write_led_report

    shards: dict[tuple[str, str], list[str]] = {}
    for spec in args.enhanced:
        dataset, method, path = spec.split(":", 2)
        shards.setdefault((dataset, method), []).append(path)
    led = get_method("led", load_settings(args.settings))
    led.load(args.model_dir)
    manifests = {name: read_manifest(path) for name, path in load_settings(args.manifests).items()}
    data = {}
    for dataset in dict.fromkeys(d for d, _ in shards):
        outputs = {method: load_outputs(paths) for (d, method), paths in shards.items() if d == dataset}
        originals = outputs.get("original", {})
        split = manifests[dataset].set_index("image_id")["split"]
        outputs[DEGRADATION] = {
            image_id: {"whole": led.degrade(arrays["whole"])}
            for image_id, arrays in originals.items()
            if "whole" in arrays and split.get(image_id) in args.splits
        }
        data[dataset] = (outputs, originals)
    counts = write_led_report(data, manifests, args.out_dir, splits=tuple(args.splits))
    logging.getLogger("xvertnet").info("led_report: %s -> %s", counts, args.out_dir)
    return 0

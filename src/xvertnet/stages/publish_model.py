"""Rule ``publish_model``: copy a trained model from its job's ``training/`` folder to the model folder.

Snakemake deletes a job's outputs before it runs and after it fails. Training therefore writes to
``<model>/training/`` and only this job, which runs after training succeeded, replaces
``<model>/model.pt`` and ``model.json`` (each written to a temporary file and renamed), so a
failed retraining never removes the model that enhancement and users rely on.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from xvertnet.errors import XvertnetError


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="the trained model's files (model.pt, model.json)")
    parser.add_argument("--out-dir", required=True, type=Path)


def publish_model(files, out_dir) -> list[Path]:
    """Copy ``files`` into ``out_dir``, each atomically, the metadata (``*.json``) last."""
    from xvertnet.io.atomic import atomic_path

    files = sorted((Path(f) for f in files), key=lambda f: f.suffix == ".json")
    from xvertnet.provenance import sha256_file

    weights = [path for path in files if path.suffix == ".pt"]
    for path in files:
        if path.suffix == ".json":
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise XvertnetError(f"{path}: not a readable model record ({error}); nothing published") from error
            recorded = record.get("model_sha256") if isinstance(record, dict) else None
            if recorded and weights and sha256_file(weights[0]) != recorded:
                raise XvertnetError(
                    f"{weights[0]}: sha256 differs from the model_sha256 of {path.name}; nothing published"
                )
    out_dir.mkdir(parents=True, exist_ok=True)
    published = []
    for path in files:
        target = out_dir / path.name
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
        published.append(target)
    return published


def run(args) -> int:
    for target in publish_model(args.files, args.out_dir):
        logging.getLogger("xvertnet").info("published %s", target)
    return 0

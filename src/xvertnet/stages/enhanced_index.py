"""Rule ``enhanced_index``: one CSV row per enhanced image over enhanced shards (PNG files next to each shard)."""

from __future__ import annotations

import logging
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("shards", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)


def write_enhanced_index(enhanced_shards, out_path) -> int:
    """One CSV row per enhanced image: shard, split and its PNG files (in the folder named after each shard)."""
    import pandas as pd

    from xvertnet.io.atomic import atomic_path
    from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

    rows = []
    for shard in enhanced_shards:
        shard = Path(shard)
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                row = {"image_id": image_id, "shard": str(shard), "split": decode_attr(group.attrs.get("split", ""))}
                row.update(
                    {f"{name}_png": str(shard.with_suffix("") / f"{image_id}_{name}.png") for name in group.keys()}
                )
                rows.append(row)
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return len(rows)


def run(args) -> int:
    count = write_enhanced_index(args.shards, args.out)
    logging.getLogger("xvertnet").info("enhanced index: %d images -> %s", count, args.out)
    return 0

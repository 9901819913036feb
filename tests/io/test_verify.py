"""Damaged caches are found: checksummed shards, one-line reasons naming the shard and the item, `xvertnet verify`."""

import json

import h5py
import numpy as np
import pytest

from xvertnet.errors import InputFileError
from xvertnet.io.shard_store import iter_items, open_shard_for_writing, read_item


def _shard(path, inputs=None):
    rng = np.random.default_rng(0)
    with open_shard_for_writing(path, stage="roi", params={}) as shard:
        shard.inputs.update(inputs or {})
        for image_id in ("a", "b"):
            shard.add(
                image_id,
                {"canonical": rng.random((64, 48)).astype(np.float32), "scale": np.float32(1.0)},
                {"split": "test"},
            )
    return path


def _flip(path, image_id="b", name="canonical", count=16):
    with h5py.File(path, "r") as handle:
        info = handle[f"items/{image_id}/{name}"].id.get_chunk_info(0)
    offset = info.byte_offset + info.size // 2
    data = bytearray(path.read_bytes())
    for index in range(offset, offset + count):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_array_is_written_with_a_checksum(tmp_path):
    with h5py.File(_shard(tmp_path / "s.h5"), "r") as handle:
        assert handle["items/a/canonical"].fletcher32


def test_flipped_bytes_in_a_chunk_are_one_line_naming_the_shard_the_item_and_the_rebuild(tmp_path):
    path = _shard(tmp_path / "s.h5")
    _flip(path)
    assert read_item(path, "a")[0]["canonical"].shape == (64, 48)  # the other image is intact
    with pytest.raises(InputFileError) as raised:
        list(iter_items(path))
    message = str(raised.value)
    assert str(path) in message and "'b/canonical' is damaged" in message and f"snakemake --force {path}" in message
    assert "\n" not in message


def test_verify_lists_damaged_and_stale_outputs_and_exits_1(tmp_path, capsys):
    from xvertnet.cli import main

    source = tmp_path / "input.png"
    source.write_bytes(b"first version")
    from xvertnet.provenance import sha256_file

    folder = tmp_path / "results"
    folder.mkdir()
    good = _shard(folder / "good.h5", {str(source): sha256_file(source)})
    damaged = _shard(folder / "damaged.h5")
    _flip(damaged)
    code = main(["verify", str(folder)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1 and len(out) == 1 and out[0].startswith(f"damaged: {damaged}") and "'b/canonical'" in out[0]
    damaged.unlink()
    source.write_bytes(b"second version")  # the input changed after the shard was written
    code = main(["verify", str(folder)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1 and len(out) == 1 and out[0].startswith(f"stale: {good}") and str(source) in out[0]
    source.write_bytes(b"first version")
    assert main(["verify", str(folder)]) == 0


def test_verify_finds_a_model_with_one_flipped_byte(tmp_path, capsys):
    from xvertnet.cli import main
    from xvertnet.provenance import sha256_file

    model = tmp_path / "results" / "models" / "demo" / "iteration-1"
    model.mkdir(parents=True)
    (model / "model.pt").write_bytes(bytes(range(256)) * 8)
    (model / "model.json").write_text(json.dumps({"model_sha256": sha256_file(model / "model.pt")}))
    assert main(["verify", str(tmp_path / "results")]) == 0
    data = bytearray((model / "model.pt").read_bytes())
    data[100] ^= 0x01
    (model / "model.pt").write_bytes(bytes(data))
    assert main(["verify", str(tmp_path / "results")]) == 1
    assert "sha256 differs from model.json" in capsys.readouterr().out


def test_verify_finds_a_truncated_shard(tmp_path, capsys):
    from xvertnet.cli import main

    folder = tmp_path / "results"
    folder.mkdir()
    path = _shard(folder / "s.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a half-synchronised copy
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"damaged: {path}")


def test_every_shard_records_its_own_sha256_beside_it_and_verify_checks_it(tmp_path, capsys):
    from xvertnet.cli import main
    from xvertnet.io.content_hash import content_hash_path
    from xvertnet.provenance import sha256_file

    folder = tmp_path / "results"
    folder.mkdir()
    path = _shard(folder / "s.h5")
    assert content_hash_path(path).read_text() == f"{sha256_file(path)}  s.h5\n"  # sha256sum -c reads it
    with h5py.File(path, "a") as handle:  # a change no array checksum sees: an attribute
        handle.attrs["stage"] = "something else"
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "differs from the sha256 recorded beside it" in out[0]


def test_a_stage_refuses_an_input_shard_whose_content_differs_from_its_recorded_sha256(tmp_path, capsys):
    from command_line import run_cli

    path = _shard(tmp_path / "roi.h5")
    with h5py.File(path, "a") as handle:
        handle.attrs["count"] = 7  # changed after it was written: not what was recorded
    code, message = run_cli(capsys, "prep", path, "--out", tmp_path / "prep.h5")
    assert code == 2 and message.startswith(f"{path}: its content differs from the sha256 recorded beside it")
    assert f"snakemake --force {path}" in message and not (tmp_path / "prep.h5").exists()


def test_verify_finds_a_changed_table_and_a_cut_png(tmp_path, capsys):
    """The evaluation's tables carry their sha256 beside them; a PNG carries a CRC per chunk: both are checked."""
    import pandas as pd

    from xvertnet.cli import main
    from xvertnet.evaluation.stats import compare, write_comparison_tables
    from xvertnet.io.writers import write_png

    folder = tmp_path / "results"
    (folder / "tables").mkdir(parents=True)
    per_roi = pd.DataFrame(
        [
            {
                "dataset": "demo",
                "image_id": f"i{k}",
                "roi": "upper",
                "split": "test",
                "method": method,
                "entropy": 6.0 + 0.1 * k + (0.5 if method == "clahe" else 0.0),
            }
            for k in range(5)
            for method in ("original", "clahe")
        ]
    )
    write_comparison_tables(
        compare(per_roi, reference="original"), folder / "tables" / "comparison", reference="original"
    )
    image = folder / "figure.png"
    write_png(image, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    assert main(["verify", str(folder)]) == 0
    assert sorted(p.name for p in (folder / "tables").glob("*.sha256")) == [
        f"comparison.{ext}.sha256" for ext in ("csv", "html", "md", "tex")
    ]
    table = folder / "tables" / "comparison.csv"
    table.write_text(table.read_text().replace("original", "xvertnet"))  # edited by hand after it was written
    data = image.read_bytes()
    image.write_bytes(data[: len(data) - 20])  # a copy cut short
    capsys.readouterr()
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith(f"damaged: {table}: its content differs from the sha256 recorded beside it")
    assert out[1].startswith(f"damaged: {image}: not a readable PNG")


def test_a_stage_refuses_a_table_whose_content_differs_from_its_recorded_sha256(tmp_path, capsys):
    """The tables stage reads the per-ROI table through its recorded sha256: a hand-edited or half-copied table is one
    line naming it and the rebuild, and nothing is written."""
    import pandas as pd
    from command_line import run_cli

    from xvertnet.io.atomic import atomic_path

    per_roi = tmp_path / "per_roi.csv"
    with atomic_path(per_roi, record_hash=True) as tmp:
        pd.DataFrame(
            [
                {
                    "dataset": "demo",
                    "image_id": "a",
                    "roi": "upper",
                    "split": "test",
                    "method": "original",
                    "entropy": 6.0,
                }
            ]
        ).to_csv(tmp, index=False)
    per_roi.write_text(per_roi.read_text().replace("6.0", "7.0"))
    out = tmp_path / "comparison.csv"
    code, message = run_cli(
        capsys, "tables", per_roi, "--csv", out, "--boxplots", tmp_path / "b.png", "--panel", tmp_path / "p.png"
    )
    assert code == 2 and message.startswith(f"{per_roi}: its content differs from the sha256 recorded beside it")
    assert not out.exists()

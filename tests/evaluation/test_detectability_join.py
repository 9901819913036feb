"""The fracture-detectability result joins the comparison table, the HTML report and the leave-one-patient-out report."""

from __future__ import annotations

import pandas as pd
import pytest

from xvertnet.errors import InputFileError
from xvertnet.evaluation.detectability_join import (
    block_html,
    block_markdown,
    detectability_block,
    pairs_html,
    read_detectability,
)


def _study_table(path):
    rows = []
    for region in ("all", "behind_heart", "above_heart"):
        for grade in (1, 2):
            for method, auc, p in (
                ("original", 0.64, float("nan")),
                ("xvertnet", 0.55, 0.001),
                ("clahe-0.01", 0.63, 0.6),
            ):
                for observer in ("cho", "npwe"):
                    rows.append(
                        {
                            "method": method,
                            "observer": observer,
                            "kind": "biconcave",
                            "grade": grade,
                            "region": region,
                            "auc": auc + 0.01 * grade,
                            "auc_low": auc - 0.05,
                            "auc_high": auc + 0.05,
                            "vs_original_p": p,
                        }
                    )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_study_s_aucs_become_rows_under_the_comparison_s_method_names(tmp_path):
    table = read_detectability(_study_table(tmp_path / "detectability.csv"))
    assert "clahe" in set(table["method"]) and "clahe-0.01" not in set(table["method"])
    block = detectability_block(table, ["original", "xvertnet", "clahe", "farbman"])
    assert list(block["label"]) == [
        "fracture AUC, biconcave grade 1, behind the heart (cho)",
        "fracture AUC, biconcave grade 2, behind the heart (cho)",
        "fracture AUC, biconcave grade 1, above the heart (cho)",
        "fracture AUC, biconcave grade 2, above the heart (cho)",
    ]
    first = block.iloc[0]
    assert first["xvertnet"] == "0.560 [0.50, 0.60]*" and first["clahe"] == "0.640 [0.58, 0.68]"
    assert "farbman" not in block.columns  # not run in the study
    markdown = block_markdown(block, ["original", "xvertnet", "clahe", "farbman"], "results/detectability/x.csv")
    assert "| fracture AUC, biconcave grade 2, behind the heart (cho) | 0.660 [0.59, 0.69] |" in markdown
    assert markdown.splitlines()[2].endswith("| – |") and "`make detectability`" in markdown
    assert "<h2>Fracture detectability</h2>" in block_html(block, ["original", "xvertnet"])


def test_the_report_embeds_the_example_pairs_and_a_wrong_table_is_one_line(tmp_path):
    png = tmp_path / "pairs.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    assert 'src="data:image/png;base64,iVBORw0KGgpmYWtl"' in pairs_html(png)
    assert pairs_html(tmp_path / "none.png") == ""
    (tmp_path / "other.csv").write_text("method,auc\nx,0.5\n")
    with pytest.raises(InputFileError, match="other.csv: has no 'observer' column"):
        read_detectability(tmp_path / "other.csv")


def test_the_comparison_table_and_the_rotation_report_carry_the_rows(tmp_path):
    from xvertnet.evaluation.leave_one_patient_out import EvaluationSettings, detectability_section
    from xvertnet.evaluation.stats import compare, write_comparison_tables

    study = _study_table(tmp_path / "detectability.csv")
    per_roi = pd.DataFrame(
        [
            {"dataset": "d", "image_id": f"i{i}", "roi": "upper", "split": "test", "method": m, "entropy": v + 0.1 * i}
            for i in range(6)
            for m, v in (("original", 5.0), ("xvertnet", 6.0), ("clahe", 5.5))
        ]
    )
    statistics = compare(per_roi)
    methods = ["original", "xvertnet", "clahe"]
    block = detectability_block(read_detectability(study), methods)
    appendix = (block_markdown(block, methods, str(study)), block_html(block, methods))
    write_comparison_tables(statistics, tmp_path / "comparison", appendix=appendix)
    assert "fracture AUC, biconcave grade 1, behind the heart (cho)" in (tmp_path / "comparison.md").read_text()
    assert "<h2>Fracture detectability</h2>" in (tmp_path / "comparison.html").read_text()
    settings = EvaluationSettings(detectability_table=str(study))
    section = detectability_section(per_roi, settings)
    assert section.startswith("\n## Fracture detectability") and "not the folds' models" in section
    assert detectability_section(per_roi, EvaluationSettings()) == ""

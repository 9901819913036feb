"""The fracture-detectability result beside the other measures: in the comparison table, the
leave-one-patient-out report and the HTML report.

``make detectability`` runs outside the workflow (it projects lesions into the CTs and enhances
every noise realisation as a whole image); its ``detectability.csv`` holds, per method, observer,
lesion and region, the AUC with its bootstrap interval over patients and cases, and paired
differences against the original and CLAHE. :func:`detectability_block` turns it into rows with
the comparison's method names as columns (``clahe-0.01``, CLAHE at the workflow's default clip
limit, is the comparison's ``clahe``; the other clip limits keep their names), and
:func:`pairs_html` embeds the study's signal-present / signal-absent examples per method in a page.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from xvertnet.errors import InputFileError

#: the study's names of the comparison's methods
RENAMED = {"clahe-0.01": "clahe"}
REGION_LABELS = {"behind_heart": "behind the heart", "above_heart": "above the heart", "all": "all levels"}
NEEDED = ("method", "observer", "kind", "grade", "region", "auc", "auc_low", "auc_high")


def read_detectability(path) -> pd.DataFrame:
    """``detectability.csv`` of ``make detectability``, its methods under the comparison's names."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputFileError(str(path), f"detectability table unreadable ({type(error).__name__})") from None
    missing = [column for column in NEEDED if column not in table.columns]
    if missing:
        raise InputFileError(str(path), f"has no '{missing[0]}' column (is it make detectability's table?)")
    return table.assign(method=table["method"].replace(RENAMED))


def detectability_block(
    table: pd.DataFrame, methods, *, observer: str = "cho", regions=("behind_heart", "above_heart")
) -> pd.DataFrame:
    """One row per region and lesion (kind, grade): ``label`` and, per method of ``methods`` the study ran,
    ``AUC [low, high]`` (``*`` where the paired difference against the original has p < 0.05)."""
    rows = []
    part = table[table["observer"] == observer]
    for region in regions:
        for (kind, grade), lesion in part[part["region"] == region].groupby(["kind", "grade"], sort=False):
            by_method = lesion.set_index("method")
            row = {"label": f"fracture AUC, {kind} grade {grade}, {REGION_LABELS.get(region, region)} ({observer})"}
            for method in methods:
                if method not in by_method.index:
                    continue
                value = by_method.loc[method]
                p = value.get("vs_original_p", np.nan)
                star = "*" if np.isfinite(p) and p < 0.05 else ""
                row[method] = f"{value['auc']:.3f} [{value['auc_low']:.2f}, {value['auc_high']:.2f}]{star}"
            rows.append(row)
    return pd.DataFrame(rows)


def block_markdown(block: pd.DataFrame, methods, source: str) -> str:
    """The rows as a Markdown table (methods as columns, as the comparison table) with their note."""
    if block.empty:
        return ""
    lines = [
        "| lesion and region | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for row in block.to_dict("records"):
        lines.append(f"| {row['label']} | " + " | ".join(row.get(m, "–") for m in methods) + " |")
    note = (
        f"Fracture detectability from `{source}` (`make detectability`: simulated compression fractures in held-out "
        "CT patients, every method on whole images, a channelized Hotelling observer with internal noise on the "
        "displayed image): AUC [95 % bootstrap interval over patients and cases]; * = paired difference against the "
        "original with p < 0.05; – = not run in that study."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def block_html(block: pd.DataFrame, methods) -> str:
    """The rows as an HTML table for the report."""
    if block.empty:
        return ""
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    body = "".join(
        f"<tr><td>{html.escape(row['label'])}</td>"
        + "".join(f"<td>{html.escape(row.get(m, '–'))}</td>" for m in methods)
        + "</tr>"
        for row in block.to_dict("records")
    )
    return f"<h2>Fracture detectability</h2><table><tr><th>lesion and region</th>{head}</tr>{body}</table>"


def pairs_html(png: Path) -> str:
    """The study's signal-present / signal-absent examples per method, embedded (the page stays one file)."""
    png = Path(png)
    if not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        "<h3>The same level with and without a fracture, per method</h3>"
        f'<img alt="signal-present and signal-absent examples per method" src="data:image/png;base64,{data}" '
        'style="max-width:100%">'
    )

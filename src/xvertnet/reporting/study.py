"""The design study's outputs: XVertNet's open design choices judged on held-out data, written out.

The selection itself (groups of ROIs, the score, the do-no-harm rule, nested selection) is
:mod:`xvertnet.evaluation.study_selection`; the Markdown and HTML are :mod:`xvertnet.reporting.study_markdown`.
Judgement, in order: ground truth on DRRs, then the paper's measures, then the visual panels drawn here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from xvertnet.evaluation.study_selection import (
    StudySettings,
    label_groups,
    nested_selection,
    recommend,
    refused_on_selection,
    summarise,
)
from xvertnet.io.atomic import atomic_path
from xvertnet.reporting.docs_tables import write_run_table
from xvertnet.reporting.study_markdown import (
    conclusion_markdown,
    goal_markdown,
    markdown_to_html,
    nested_markdown,
    summary_markdown,
    variant_markdown,
)


def panel_image_ids(table: pd.DataFrame) -> list[str]:
    """The panel's images: a report patient's clean and low-dose DRR (the first report patient with both) and the
    real radiographs, so that the panel always shows a real image and a low-dose one."""
    held = table[table["group"].eq("held-out DRR")]
    chosen = []
    if "patient" in held.columns and held["patient"].notna().any():
        for _, part in held.groupby("patient", sort=True):
            ids = [
                part.loc[part["condition"].eq(c), "image_id"].iloc[0]
                for c in ("standard", "low_dose")
                if part["condition"].eq(c).any()
            ]
            if len(ids) == 2:
                chosen = ids
                break
    if not chosen:
        chosen = held[held["condition"].isin(["standard", "low_dose"])]["image_id"].drop_duplicates().tolist()[:2]
    real = table[table["group"].eq("real")]["image_id"].drop_duplicates().tolist()
    return [*chosen, *real][:4]


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """What a study run produced, for :func:`write_study`: its measures per ROI (``per_roi.csv``), the data sets'
    manifests, its entries with their `train` settings, and where their enhanced shards are."""

    per_roi: pd.DataFrame
    manifests: dict[str, pd.DataFrame]
    entries: list[str]
    #: Each entry's `train` settings (as the variant sets them); an entry without any is shown with none.
    entry_settings: dict[str, dict] = dataclasses.field(default_factory=dict)
    #: Enhanced shards per method (no panel for a method without any).
    enhanced: dict[str, list] = dataclasses.field(default_factory=dict)
    #: The entry trained with the paper's recipe, named in the conclusion.
    paper_entry: str | None = None
    #: Validation-loss spikes per entry during training (counted in the summary).
    spikes: dict[str, int] | None = None
    #: The images of the panels (None: chosen from the table).
    panel_images: list[str] | None = None


def write_study(run: StudyRun, design: StudySettings, out_dir) -> str:
    """Every study output into ``out_dir``; returns the recommended entry.

    ``summary.{csv,md}``, ``conclusion.{md,html}``, ``grouped_per_roi.csv``, with ``nested`` also
    ``nested.csv`` (the folds), and, per entry, ``variants/<entry>.md`` and ``panels/<entry>.png`` (the
    entry beside the references). Returns ``"none"`` when the selection finds no eligible entry (only with
    ``do_no_harm`` or ``nested``).
    """
    from xvertnet.reporting.report_figures import visual_panel

    per_roi, manifests, entries, settings = run.per_roi, run.manifests, run.entries, run.entry_settings
    enhanced, paper_entry, spikes, panel_images = run.enhanced, run.paper_entry, run.spikes, run.panel_images
    references, score, nested = list(design.references), design.score, design.nested
    do_no_harm, harm_tolerance = list(design.do_no_harm), design.harm_tolerance

    out_dir = Path(out_dir)
    (out_dir / "variants").mkdir(parents=True, exist_ok=True)
    (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    table = label_groups(
        per_roi,
        manifests,
        select_split=design.select_split,
        select_conditions=list(design.select_conditions),
        report_split=design.report_split,
        patient_independent=design.patient_independent,
    )
    summary = summarise(table, entries, references, score=score, spikes=spikes)
    nested_text, refused = "", None
    if nested:
        folds, with_nested, final, ranking = nested_selection(
            table, entries, score=score, do_no_harm=do_no_harm, tolerance=harm_tolerance
        )
        nested_text = nested_markdown(
            folds, with_nested, final, ranking, score=score, do_no_harm=do_no_harm, tolerance=harm_tolerance
        )
        with atomic_path(out_dir / "nested.csv") as tmp:
            folds.to_csv(tmp, index=False)
        # with none eligible, the conclusion and panels show the best score regardless, and say so
        chosen = final or str(ranking.iloc[0]["entry"])
    else:
        refused = refused_on_selection(table, entries, do_no_harm, harm_tolerance) if do_no_harm else None
        final = recommend(summary, refused)
        # with every variant refused by the rule, the conclusion and panels show the best score regardless
        chosen = final or recommend(summary)
    with atomic_path(out_dir / "grouped_per_roi.csv") as tmp:
        table.to_csv(tmp, index=False)
    recommended = "none" if final is None else chosen
    with atomic_path(out_dir / "summary.csv") as tmp:
        summary.assign(recommended=summary["method"].eq(recommended)).to_csv(tmp, index=False)
    # both are docs tables (the design study's page): headed by the command that wrote them, the commit and the machine
    write_run_table(
        out_dir / "summary.md", "xvertnet study-report", summary_markdown(summary, chosen, score, nested=nested)
    )
    conclusion = conclusion_markdown(
        summary,
        chosen,
        settings,
        paper_entry=paper_entry,
        score=score,
        nested=(final is not None) if nested else None,
        refused=refused if not nested and final is None else None,
        preamble=nested_text,
    )
    conclusion += "\n" + goal_markdown(table, chosen)
    if table.attrs.get("shared_patients"):
        conclusion += (
            f"\n**Not patient-independent:** {', '.join(table.attrs['shared_patients'])} gave both selection and "
            "report images (study.patient_independent: false).\n"
        )
    write_run_table(out_dir / "conclusion.md", "xvertnet study-report", conclusion)
    with atomic_path(out_dir / "conclusion.html") as tmp:
        tmp.write_text(
            markdown_to_html(
                conclusion + "\n" + summary_markdown(summary, chosen, score, nested=nested), "XVertNet design study"
            )
        )
    if panel_images is None:
        panel_images = panel_image_ids(table)
    for entry in entries:
        with atomic_path(out_dir / "variants" / f"{entry}.md") as tmp:
            tmp.write_text(variant_markdown(table, entry, references, settings.get(entry)))
        shown = {method: enhanced[method] for method in [*references, entry] if method in enhanced}
        if entry in shown:
            visual_panel(shown, out_dir / "panels" / f"{entry}.png", image_ids=panel_images, values=table)
    return recommended

"""A reading page for people: a two-alternative forced-choice (2AFC) test on the study's present/absent pairs.

**The page** (``index.html``, static, no server, no network): each trial shows two patches of the
same vertebral level of the same patient, as one method displays them, one with a simulated
fracture at its centre and one without (the same realisation number, independent noise); the
reader clicks the one with the fracture (or presses the left or right arrow key). The methods come
one at a time, in an order drawn at random for every reader, their names hidden; within a block
the trials are shuffled too. The same case pairs are shown by every method (a paired design). At
the end the page offers the answers as a CSV to download (``trial, block, chosen, milliseconds``);
nothing leaves the reader's machine.

**The truth** is not in the page: image names are random, and which side holds the fracture is
written to ``trials.csv`` beside it (keep it away from readers), which
:func:`score_answers` (command ``xvertnet score-reading``) joins with the answers.

**Scores.** In a 2AFC test the proportion correct PC estimates the AUC of the reader's ROC curve
(Green and Swets 1966), and d' = sqrt(2) Phi^-1(PC). Per method: PC with a 95 % bootstrap
interval (trials resampled, and readers when several answer files are given), and the paired
difference of PC against the original over the same trials.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from xvertnet.errors import InputImageError, InvalidValueError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.writers import write_png

ANSWER_COLUMNS = ("trial", "block", "chosen", "milliseconds")


def choose_pairs(cases: pd.DataFrame, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` (present index, absent index) pairs of the same patient, view (where cases name views), level,
    realisation and place (the lesion type's), lesions drawn at random."""
    keys = [key for key in ("patient", "view", "level", "realisation", "kind") if key in cases.columns]
    absent = cases[~cases["present"]].set_index(keys)
    present = cases[cases["present"]]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(present))
    pairs = []
    for position in order[:count]:
        row = present.iloc[position]
        match = absent.index.get_indexer([tuple(row[key] for key in keys)])[0]
        if match >= 0:
            pairs.append((int(present.index[position]), int(cases.index[~cases["present"]][match])))
    return pairs


def write_reading_page(
    patches: dict, cases: pd.DataFrame, out_dir, *, trials_per_method: int = 24, seed: int = 0
) -> Path:
    """The page, its images and ``trials.csv`` (module docstring); ``patches`` maps a method to its displayed
    patches in [0, 1] (rows of ``cases``). Returns the page's path."""
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    pairs = choose_pairs(cases, trials_per_method, seed)
    if not pairs:
        raise InvalidValueError("reading page: no present/absent pairs of one patient, level and realisation")
    rng = np.random.default_rng(seed + 1)
    methods = list(patches)
    trials, truth = [], []
    for block, method in enumerate(methods):
        for number, (present, absent) in enumerate(pairs):
            trial = f"{block:02d}{number:03d}{int(rng.integers(1 << 20)):06x}"
            left_present = bool(rng.integers(2))
            names = {}
            for side, index in (
                ("left", present if left_present else absent),
                ("right", absent if left_present else present),
            ):
                names[side] = f"{int(rng.integers(1 << 40)):010x}.png"
                write_png(images / names[side], np.rint(np.clip(patches[method][index], 0, 1) * 255).astype(np.uint8))
            trials.append(
                {"trial": trial, "block": block, "left": f"images/{names['left']}", "right": f"images/{names['right']}"}
            )
            row = cases.loc[present]
            truth.append(
                {
                    "trial": trial,
                    "block": block,
                    "method": method,
                    "pair": number,
                    "present_side": "left" if left_present else "right",
                    "patient": row["patient"],
                    "level": int(row["level"]),
                    "region": row["region"],
                    "kind": row["kind"],
                    "grade": int(row["grade"]),
                }
            )
    with atomic_path(out_dir / "trials.csv") as tmp:
        pd.DataFrame(truth).to_csv(tmp, index=False)
    page = out_dir / "index.html"
    with atomic_path(page) as tmp:
        Path(tmp).write_text(_PAGE.replace("__TRIALS__", json.dumps(trials)).replace("__BLOCKS__", str(len(methods))))
    return page


def read_answers(paths) -> pd.DataFrame:
    """Answer CSVs of the page, one reader each (the file's stem names the reader); a file that is not one: one line."""
    frames = []
    for path in map(Path, paths):
        try:
            frame = pd.read_csv(path, dtype={"trial": str})
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise InputImageError(
                path, f"not an answers CSV of the reading page ({' '.join(str(error).split())})"
            ) from None
        missing = [column for column in ANSWER_COLUMNS if column not in frame.columns]
        if missing:
            raise InputImageError(path, f"not an answers CSV of the reading page: no column '{missing[0]}'")
        bad = sorted(set(frame["chosen"]) - {"left", "right"})
        if bad:
            raise InputImageError(path, f"column chosen holds '{bad[0]}', expected left or right")
        frames.append(frame.assign(reader=path.stem))
    return pd.concat(frames, ignore_index=True)


def score_answers(
    answers: pd.DataFrame, trials: pd.DataFrame, *, bootstrap: int = 2000, seed: int = 0, reference: str = "original"
) -> pd.DataFrame:
    """Per method: trials answered, PC (= AUC) with its 95 % interval, d', and the paired PC difference to ``reference``."""
    merged = answers.merge(trials.astype({"trial": str}), on="trial", how="inner", suffixes=("", "_truth"))
    unknown = sorted(set(answers["trial"]) - set(trials["trial"].astype(str)))
    if unknown:
        raise InvalidValueError(
            f"answers name trial '{unknown[0]}', which trials.csv does not hold (another page's answers?)"
        )
    merged["correct"] = (merged["chosen"] == merged["present_side"]).astype(float)
    table = merged.pivot_table(index=["reader", "pair"], columns="method", values="correct", aggfunc="mean")
    rng = np.random.default_rng(seed)
    readers = table.index.get_level_values("reader").unique()
    draws = []
    for _ in range(bootstrap):  # readers, then the pairs within each
        parts = []
        for reader in rng.choice(readers, size=len(readers)):
            rows = table.loc[reader]
            parts.append(rows.iloc[rng.integers(len(rows), size=len(rows))])
        draws.append(pd.concat(parts).mean())
    draws = pd.DataFrame(draws)
    rows = []
    for method in table.columns:
        pc = float(table[method].mean())
        row = {
            "method": method,
            "trials": int(table[method].notna().sum()),
            "pc": pc,
            "pc_low": float(draws[method].quantile(0.025)),
            "pc_high": float(draws[method].quantile(0.975)),
            "dprime": float(np.sqrt(2.0) * stats.norm.ppf(np.clip(pc, 0.005, 0.995))),
        }
        if reference in table.columns and method != reference:
            difference = draws[method] - draws[reference]
            row.update(
                {
                    f"vs_{reference}": pc - float(table[reference].mean()),
                    f"vs_{reference}_low": float(difference.quantile(0.025)),
                    f"vs_{reference}_high": float(difference.quantile(0.975)),
                    f"vs_{reference}_p": float(min(1.0, 2.0 * min((difference <= 0).mean(), (difference >= 0).mean()))),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xvertnet reading test (2AFC)</title>
<style>
body { font-family: sans-serif; background: #111; color: #ddd; text-align: center; }
#pair img { width: 320px; height: 320px; image-rendering: pixelated; margin: 12px; border: 3px solid #333; cursor: pointer; }
#pair img:hover { border-color: #888; }
button, a { font-size: 16px; margin: 8px; color: #ddd; }
</style></head>
<body>
<h1>Which image shows the vertebral fracture?</h1>
<p>Each pair shows one vertebral body (at the centre) of the same patient, processed alike; one of the two has a
simulated compression fracture (its upper endplate lowered, or both endplates pressed in). Click it, or press the
left or right arrow key. __BLOCKS__ blocks, one processing method each, in an order of their own.</p>
<p id="progress"></p>
<div id="pair"><img id="left" alt="left image"><img id="right" alt="right image"></div>
<div id="done" hidden><p>Finished. Download your answers and send the file to the study's organiser.</p>
<a id="download" download="answers.csv">Download answers.csv</a></div>
<script>
const trials = __TRIALS__;
const blocks = [...new Set(trials.map(t => t.block))];
function shuffle(items) { for (let i = items.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1));
  [items[i], items[j]] = [items[j], items[i]]; } return items; }
const order = [];
shuffle(blocks).forEach(b => order.push(...shuffle(trials.filter(t => t.block === b))));
const answers = [];
let index = 0, shown = 0;
function show() {
  if (index >= order.length) { finish(); return; }
  const t = order[index];
  document.getElementById("left").src = t.left;
  document.getElementById("right").src = t.right;
  document.getElementById("progress").textContent = `Trial ${index + 1} of ${order.length}`;
  shown = performance.now();
}
function choose(side) {
  if (index >= order.length) return;
  const t = order[index];
  answers.push([t.trial, t.block, side, Math.round(performance.now() - shown)]);
  index += 1;
  show();
}
function answersCsv() { return "trial,block,chosen,milliseconds\\n" + answers.map(a => a.join(",")).join("\\n") + "\\n"; }
function finish() {
  document.getElementById("pair").hidden = true;
  document.getElementById("done").hidden = false;
  document.getElementById("download").href = URL.createObjectURL(new Blob([answersCsv()], {type: "text/csv"}));
}
window.readingAnswersCsv = answersCsv;
window.readingCurrent = () => index < order.length ? order[index] : null;
document.getElementById("left").onclick = () => choose("left");
document.getElementById("right").onclick = () => choose("right");
document.addEventListener("keydown", e => { if (e.key === "ArrowLeft") choose("left"); if (e.key === "ArrowRight") choose("right"); });
show();
</script>
</body></html>
"""

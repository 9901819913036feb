"""Command ``xvertnet score-reading``: score answer CSVs of the 2AFC reading page (:mod:`xvertnet.evaluation.reading`).

Give the answers (one CSV per reader, as the page downloads them) and the page's ``trials.csv``. Prints per
method the trials answered, the proportion correct (PC, an estimate of the AUC) with its 95 % bootstrap
interval, d' = sqrt(2) Phi^-1(PC), and the paired PC difference against the original.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("answers", nargs="+", type=Path, help="answers CSV(s) downloaded from the reading page")
    parser.add_argument("--trials", required=True, type=Path, help="the page's trials.csv (the truth)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import pandas as pd

    from xvertnet.errors import InputImageError
    from xvertnet.evaluation.reading import read_answers, score_answers

    try:
        trials = pd.read_csv(args.trials, dtype={"trial": str})
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputImageError(
            args.trials, f"not the reading page's trials.csv ({' '.join(str(error).split())})"
        ) from None
    if "present_side" not in trials.columns:
        raise InputImageError(args.trials, "not the reading page's trials.csv: no column 'present_side'")
    scores = score_answers(read_answers(args.answers), trials, bootstrap=args.bootstrap)
    if args.json:
        print(json.dumps(scores.to_dict(orient="records"), indent=2))
    else:
        for row in scores.itertuples():
            extra = (
                f"  vs original {row.vs_original:+.3f} (p {row.vs_original_p:.2f})"
                if hasattr(row, "vs_original") and row.vs_original == row.vs_original
                else ""
            )
            print(
                f"{row.method:>14}  PC {row.pc:.3f} ({row.pc_low:.3f}-{row.pc_high:.3f})  d' {row.dprime:.2f}  "
                f"n {row.trials}{extra}"
            )
    return 0

"""The model observers' known-answer checks (xvertnet.evaluation.observer_validation), as a table.

    python benchmarks/observer_validation.py [--markdown FILE]

The same checks the test suite asserts on (tests/evaluation/test_observer.py, test_fracture.py): white noise with a
known signal, an invertible filter, a display window that clips the signal, and a phantom spine whose d' must grow
with the fracture's grade and as the square root of the dose. Prints the table; with --markdown also writes it as a
docs table headed by this command, the commit and the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    from xvertnet.evaluation.observer_validation import all_checks, checks_markdown

    start = time.perf_counter()
    table = checks_markdown(all_checks())
    seconds = time.perf_counter() - start
    print(table)
    print(f"{seconds:.1f} s")
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            "White noise, filter and display checks: the observers trained on one half of the images and tested on "
            "the other, and the other way round; the Hotelling interval is a bootstrap over cases (200 resamples). "
            "Phantom checks: the known signal as the template, nothing trained. "
            f"All checks: {seconds:.0f} s on this machine."
        )
        write_run_table(args.markdown, benchmark_command(), table + "\n" + note)


if __name__ == "__main__":
    main()

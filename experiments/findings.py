"""Write (or check) the findings README.md and docs/ state, generated from the committed reference.

    python -m experiments.findings --check            # exit 1 naming each block that differs from the reference
    python -m experiments.findings --write            # rewrite those blocks in place (make reference runs it)

The blocks and what they hold: ``bnstudy/findings.py``. Documents are written atomically; only the text
between a block's markers changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnstudy.findings import BLOCKS, REFERENCE, blocks_in, render, replace_blocks, stale
from bnstudy.records import write_text_atomic
from bnstudy.runs import one_line_warnings

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.findings", description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, default=ROOT / REFERENCE, help=f"the reference folder (default {REFERENCE})")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true", help="exit 1 if a document's block differs from the reference")
    what.add_argument("--write", action="store_true", help="rewrite the blocks in README.md and docs/")
    a = p.parse_args(argv)
    if not a.reference.is_dir():
        print(f"error: no reference folder {a.reference}; make reference writes one", file=sys.stderr)
        return 2
    one_line_warnings()
    bodies = render(a.reference)
    if a.check:
        bad = stale(ROOT, bodies)
        for line in bad:
            print(f"differs from the reference: {line} (python -m experiments.findings --write)")
        return 1 if bad else 0
    for doc, names in BLOCKS.items():
        path = ROOT / doc
        text = path.read_text(encoding="utf-8")
        missing = [n for n in names if n not in blocks_in(text)]
        if missing:
            print(f"error: {doc} has no block {', '.join(missing)}: add its markers (bnstudy/findings.py)",
                  file=sys.stderr)
            return 2
        new = replace_blocks(text, bodies)
        if new != text:
            write_text_atomic(path, new)
            print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

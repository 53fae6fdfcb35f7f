"""README.md, docs/ and the committed REPORT.md say what the committed reference's runs say: every generated
block is what ``bnstudy.findings`` renders from those runs today, and REPORT.md's verdicts are the claims'."""

from __future__ import annotations

import re

import pytest

from bnstudy import findings
from bnstudy.claims import check_claims
from conftest import ROOT

REFERENCE = ROOT / findings.REFERENCE

pytestmark = pytest.mark.conf_spec  # the reference's runs, judged as canonical runs are


@pytest.fixture(scope="module")
def bodies():
    return findings.render(REFERENCE)


def test_every_generated_block_is_what_the_reference_says(bodies):
    assert findings.stale(ROOT, bodies) == [], "run: python -m experiments.findings --write"


def test_the_committed_report_gives_the_claims_verdicts():
    report = (REFERENCE / "REPORT.md").read_text(encoding="utf-8")
    results = check_claims(REFERENCE, "quick")
    holds = sum(r.verdict == "holds" for r in results if not r.scope)
    assert f"**{holds} of the paper's {len(results)} claims hold**" in report
    for r in results:
        row = next(line for line in report.splitlines() if line.startswith(f"| {r.id}. "))
        assert f"| **{r.verdict_text}** |" in row or f"| {r.verdict_text} |" in row, r.id


def test_a_changed_number_is_caught(tmp_path, bodies):
    """The check compares the whole block: one digit changed in the README is a difference, named."""
    for doc in findings.BLOCKS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / doc).write_text((ROOT / doc).read_text(encoding="utf-8"), encoding="utf-8")
    readme = tmp_path / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = findings.blocks_in(text)["quick-findings"]
    changed = re.sub(r"\d\.\d{3}", lambda m: "9.999", block, count=1)
    assert changed != block
    readme.write_text(text.replace(block, changed), encoding="utf-8")
    assert findings.stale(tmp_path, bodies) == ["README.md: quick-findings"]
    readme.write_text(findings.replace_blocks(readme.read_text(encoding="utf-8"), bodies), encoding="utf-8")
    assert findings.stale(tmp_path, bodies) == []

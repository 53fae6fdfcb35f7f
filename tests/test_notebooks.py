"""The notebooks run as tests: every cell of every ``notebooks/*.ipynb`` is executed (nbclient, a fresh
kernel per notebook, a time limit per cell) and any cell that raises fails the build. Their jupytext
twins (``notebooks/*.py``, percent format) must hold the same cells.

``explore.ipynb`` gets its ``RESULTS`` parameter pointed at an empty temporary folder (as papermill
would inject it), so it runs its own tiny sweep and never reads a developer's ``results/``.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300  # per cell; the slowest (explore's tiny sweep) takes ~10 s on 2 CPU cores


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def _inject(nb, **params) -> None:
    """Append ``NAME = value`` lines to the cell tagged ``parameters`` (papermill's convention)."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    assert cell is not None, "the notebook has no cell tagged 'parameters'"
    cell.source += "".join(f"\n{k} = {v!r}  # injected by tests/test_notebooks.py" for k, v in params.items())


def test_there_are_notebooks():
    assert {p.stem for p in IPYNB} >= {"explore", "worked_example"}


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_twins_in_sync(ipynb: Path):
    """``jupytext --sync notebooks/*.ipynb`` after editing either file keeps this passing."""
    twin = ipynb.with_suffix(".py")
    assert twin.exists(), f"{ipynb.name} has no jupytext twin: run `jupytext --set-formats ipynb,py:percent {ipynb}`"
    nb, py = jupytext.read(ipynb), jupytext.read(twin)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert _cells(nb) == _cells(py), f"{ipynb.name} and {twin.name} differ: run `jupytext --sync {ipynb}`"


def test_every_twin_has_a_notebook():
    for py in NOTEBOOKS.glob("*.py"):
        assert py.with_suffix(".ipynb").exists(), f"{py.name} has no .ipynb: run `jupytext --sync {py}`"


@pytest.mark.slow
@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_notebook_runs(ipynb: Path, tmp_path: Path):
    nb = nbformat.read(ipynb, as_version=4)
    if ipynb.stem == "explore":
        (tmp_path / "empty").mkdir()
        _inject(nb, RESULTS=str(tmp_path / "empty"), DEMO_DIR=str(tmp_path / "demo"))
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{ipynb.name}: a cell raised:\n{e}", pytrace=False)
    finally:
        nbformat.write(nb, tmp_path / ipynb.name)  # the executed notebook, to look at when a test fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if ipynb.stem == "explore":
        images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) >= 2, "explore should draw the metric curves and a figure"

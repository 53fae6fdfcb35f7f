"""Figures, drawn from the runs' CSVs alone (plotting never trains): ``FIGURES``, one entry per figure.

==============  ========================================================================================
``base``        the registry (``@figure(name, experiments=..., caption=...)``), the plotting helpers, the
                footer naming a figure's runs, and ``draw``/``save``
``paper``       the paper's figures (fig1-fig5, fig9, fig11), the browser reproduction's, the DLN sweep's
                and the main job's (``quick``)
``beyond``      the measurements beyond the paper: curvature, theory, signal
``tutorials``   the figure of ``make tutorials``
==============  ========================================================================================

Every module of this package is imported here, so a figure is one registered function in one module (a
new module included) and its experiments' configs: ``make figures`` and ``python -m experiments.figures``
draw every registered figure, and REPORT.md shows it with its caption and the runs it was drawn from.
``draw`` writes ``<name>_<scale>.png`` and ``.pdf`` with ``<name>_<scale>.runs.txt`` beside them (its footer,
which REPORT.md's caption quotes); a figure none of whose experiments has a finished run is not written.
"""

from bnstudy.figures.base import (FIGURES, Figure, as_runset, draw, figure, footer, is_empty, load_experiment,
                                  mark_empty, plot_metric, save)
from bnstudy.registry import collect

collect(__name__, __path__)  # every module: its @figure registrations run

__all__ = ["FIGURES", "Figure", "as_runset", "draw", "figure", "footer", "is_empty", "load_experiment", "mark_empty",
           "plot_metric", "save"]

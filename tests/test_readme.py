"""The README and docs/ cannot rot: every command they show is checked here (CI runs `make install &&
make test`), the README stays a guide that links every page of docs/, and no document names a path
outside the repository.

`make` commands are dry-run (`make -n`: the target and its variables exist); `python -m experiments.train`
commands are composed (`--cfg job`, sweeps reduced to their first value); other entry points answer
`--help`; and the main job, `make quick`, runs for real at a tiny size.
"""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in DOCS}}


def readme_commands() -> list[str]:
    """Every ``make ...`` / ``python -m ...`` command of the README and of docs/*.md."""
    text = "\n".join(DOCUMENTS.values())
    fenced = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    inline = re.findall(r"`((?:make|python -m) [^`]+)`", text)
    commands = []
    for line in fenced + inline:
        line = re.sub(r"\s+#.*$", "", line).strip()
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith(("make", "python -m")) and "<" not in part and "..." not in part:
                commands.append(part)
    return sorted(set(commands))


COMMANDS = readme_commands()


def test_readme_is_a_guide_linking_every_doc():
    assert len(README.splitlines()) <= 210, "README.md is the guide: move details to docs/"
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", README))
    assert linked == {f"docs/{p.name}" for p in DOCS}, "each docs/ page is linked from the README, and exists"
    for name, text in DOCUMENTS.items():
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://")):
                assert (ROOT / Path(name).parent / target).exists(), f"{name} links to missing {target}"


OUTSIDE = re.compile(r"/work/|shared/se{1}eds|\.\./sha[r]ed|/home/|/Users/")


def test_no_document_or_notebook_names_a_path_outside_the_repository():
    files = [ROOT / "README.md", *DOCS, *sorted((ROOT / "notebooks").glob("*.py")),
             *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in files:
        hits = OUTSIDE.findall(path.read_text())
        assert not hits, f"{path.relative_to(ROOT)} names a path outside the repository: {hits}"


def test_readme_has_the_two_first_commands():
    assert "make install && make test" in README
    assert {"make install", "make test", "make quick"} <= set(COMMANDS)


def _first_of_sweeps(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a == "-m" or a == "--multirun":
            continue
        key, sep, value = a.partition("=")
        if sep and "," in value and not value.startswith(("[", "'[", '"[')):
            value = value.split(",")[0]
        out.append(f"{key}{sep}{value}")
    return out


# Every python command of the documents in one process (each module run as __main__ with its argv, one after
# another): a process per command spent ~3 s each importing torch, about 3 minutes of the suite.
CHECK_ALL = r"""
import contextlib, io, json, runpy, sys
results, todo = {}, json.loads(sys.stdin.read())
for command, module, argv in todo:
    buf, code = io.StringIO(), 0
    sys.argv = [module, *argv]
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException as e:  # noqa: BLE001 - reported as the command's failure
            code = 1
            buf.write(f"{type(e).__name__}: {e}")
    results[command] = [code, buf.getvalue()[-3000:]]
with open(OUT, "w") as f:
    json.dump(results, f)
"""


def python_check(command: str) -> tuple[str, list[str]]:
    """The module and argv a document's ``python -m`` command is checked with: ``experiments.train`` composed
    (``--cfg job``, sweeps reduced to their first value), any other entry point ``--help``."""
    args = shlex.split(command)
    if args[2] != "experiments.train":
        return args[2], ["--help"]
    rest = _first_of_sweeps(args[3:])
    if "--help" not in rest and "--cfg" not in rest:
        rest += ["--cfg", "job"]
    return "experiments.train", rest


@pytest.fixture(scope="module")
def python_commands(tmp_path_factory) -> dict[str, list]:
    out = tmp_path_factory.mktemp("readme") / "results.json"
    todo = [[c, *python_check(c)] for c in COMMANDS if not c.startswith("make")]
    done = subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + CHECK_ALL], input=json.dumps(todo),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, request):
    if command.startswith("make"):
        done = subprocess.run(["make", "-n", *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return
    code, output = request.getfixturevalue("python_commands")[command]
    assert code == 0, f"{command}\n{output}"


def test_main_job_runs_for_real(tmp_path):
    """`make quick` at a tiny size, from another directory: results and the figure land under it."""
    tiny = ("train.steps=6 train.log_every=2 train.eval_every=3 train.measure_every=3 data.train_size=256 "
            "data.test_size=128 train.eval_size=128 train.batch_size=64")
    done = subprocess.run(["make", "-f", str(ROOT / "Makefile"), "quick", f"PY={sys.executable}", f"ARGS={tiny}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(tmp_path.glob("results/quick/quick/*/*/metrics.csv"))
    assert len(jobs) == 4  # norm none, batch x lr 0.1, 0.5
    figure = tmp_path / "results" / "figures" / "quick_quick.png"
    assert figure.stat().st_size > 10_000

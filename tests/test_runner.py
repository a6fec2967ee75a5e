"""matdisco.runner: papermill stages, manifest, resume, failures; the export check."""

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from matdisco.registry import Experiment, EXPERIMENTS, PROFILES

from matdisco.runner import StageFailed, run_pipeline
from matdisco.core import project_root

ROOT = project_root()


def _nb(path: Path, params: str, body: str):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, path)


BODY_OK = """
from pathlib import Path
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
from matdisco.figures import save_figure
fig, ax = plt.subplots(); ax.plot([0, 1], [0, value]); ax.set_xlabel("x (1)"); ax.set_ylabel("y (1)")
save_figure(fig, "toy", figures_dir)
Path(out_dir, "result.txt").write_text(str(value))
"""


@pytest.fixture
def toy(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "a.ipynb", "profile='tiny'\nseed=0\nout_dir='.'\nfigures_dir='f'\nvalue=1", BODY_OK)
    _nb(
        nbs / "b.ipynb", "profile='tiny'\nseed=0\nout_dir='.'\nfigures_dir='f'", "raise RuntimeError('boom in stage b')"
    )
    exps = [Experiment("a", "a.ipynb", "toy", {"tiny": {"value": 3}}), Experiment("b", "b.ipynb", "fails")]
    return tmp_path, nbs, exps


def test_stage_failure_names_stage_and_error_and_keeps_completed(toy):
    tmp, nbs, exps = toy
    out = tmp / "run"
    with pytest.raises(StageFailed, match=r"stage 'b' failed in cell \d+ of b.ipynb: RuntimeError: boom in stage b"):
        run_pipeline("tiny", out=out, experiments=exps, notebooks_dir=nbs, figures_dir=tmp / "figs", progress=False)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "failed" and man["stages"]["a"]["status"] == "complete"
    assert man["stages"]["b"]["status"] == "failed" and "boom" in man["stages"]["b"]["error"]
    assert (out / "stages/a/result.txt").read_text() == "3"  # profile parameter reached the notebook
    assert (tmp / "figs/toy.png").exists() and (tmp / "figs/toy.pdf").exists()
    assert (out / "run.log").read_text().count("stage a: complete") == 1


def test_resume_skips_completed_stages(toy):
    tmp, nbs, exps = toy
    out = tmp / "run"
    run_pipeline("tiny", out=out, experiments=exps[:1], notebooks_dir=nbs, figures_dir=tmp / "figs", progress=False)
    done = out / "stages/a/done.json"
    first = done.stat().st_mtime_ns
    run_pipeline("tiny", out=out, experiments=exps[:1], notebooks_dir=nbs, figures_dir=tmp / "figs", progress=False)
    assert done.stat().st_mtime_ns == first  # not rerun
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["stages"]["a"]["skipped_on_resume"]
    for key in ("git", "environment", "profile", "seed", "data", "stages"):
        assert key in man
    assert man["environment"]["packages"]["torch"].startswith("2.13")
    (out / "stages/a/stale_model.pt").write_text("made under old settings")
    run_pipeline(
        "tiny", out=out, experiments=exps[:1], notebooks_dir=nbs, figures_dir=tmp / "figs", progress=False, force=True
    )
    assert done.stat().st_mtime_ns != first  # --force reruns
    assert not (out / "stages/a/stale_model.pt").exists()  # ... and clears the stage: nothing old is reused


READS = """
from pathlib import Path
from matdisco.data import record_read
for name in datasets.split():
    record_read(name, Path("/mirror", name, "file.csv"), name[0] * 64)
"""


def test_each_stage_records_the_data_it_read_and_only_that(tmp_path):
    """A stage's `done.json` and results file list the data files that stage read, not those of every stage in the
    run; the manifest lists the whole run's."""
    from matdisco.results import stage_results

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "r.ipynb", "profile='tiny'\nseed=0\nout_dir='.'\nfigures_dir='f'\ndatasets=''", READS)
    exps = [
        Experiment("candidates", "r.ipynb", "reads one", {"tiny": {"datasets": "alpha"}}),
        Experiment("evaluate", "r.ipynb", "reads two", {"tiny": {"datasets": "alpha beta"}}),
        Experiment("mlip", "r.ipynb", "reads none", {"tiny": {"datasets": ""}}),
    ]
    out = run_pipeline("tiny", out=tmp_path / "run", experiments=exps, notebooks_dir=nbs, progress=False)

    def datasets(stage):
        return [d["dataset"] for d in stage_results(out, stage)["provenance"]["data"]]

    assert datasets("candidates") == ["alpha"]
    assert datasets("evaluate") == ["alpha", "beta"]
    assert datasets("mlip") == []
    assert json.loads((out / "stages/evaluate/done.json").read_text())["data"][1]["sha256"] == "b" * 64
    assert [d["dataset"] for d in json.loads((out / "manifest.json").read_text())["data"]] == ["alpha", "beta"]


def test_every_parameter_has_one_home_the_notebooks_parameters_cell_which_is_the_tiny_profile():
    """A profile lists only what it changes in the notebook's one `parameters` cell; `tiny` changes nothing, so a
    notebook run by hand is the tiny run (the registry once set a `tiny` value that differed from the notebook's)."""
    for e in EXPERIMENTS:
        assert e.params_for("tiny") == {}, e.name
        nb = nbformat.read(ROOT / "nbs" / "experiments" / e.notebook, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, e.notebook
        every_profile = {name for profile in PROFILES for name in e.params_for(profile)}
        for name in ("profile", "seed", "out_dir", "figures_dir", *sorted(every_profile)):
            assert f"{name} =" in tagged[0].source, (e.notebook, name)  # a profile sets only what the notebook has


def test_every_field_of_an_experiments_config_can_be_set_from_a_profile():
    """A config dataclass an experiment builds takes each of its fields from a named parameter or from the notebook's
    `settings` dict (any other field by name), so a profile reaches every field, the oracle included."""
    import ast
    import dataclasses

    from matdisco.discovery import DiscoveryConfig
    from matdisco.evaluate import EvaluateConfig
    from matdisco.models import GNNConfig
    from matdisco.train import TrainConfig
    from matdisco.validation import ValidationConfig

    for config, notebook, settings in (
        (DiscoveryConfig, "05_discovery.ipynb", "settings"),
        (EvaluateConfig, "07_evaluate.ipynb", "settings"),
        (ValidationConfig, "08_validation.ipynb", "settings"),
        (GNNConfig, "02_energy_models.ipynb", "gnn_settings"),
        (TrainConfig, "02_energy_models.ipynb", "train_settings"),
    ):
        nb = nbformat.read(ROOT / "nbs" / "experiments" / notebook, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert f"{settings} = {{}}" in cell.source, (notebook, settings)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not c.source.startswith("%"))
        calls = [
            node
            for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == config.__name__
        ]
        unpacked = {k.value.id for call in calls for k in call.keywords if k.arg is None and hasattr(k.value, "id")}
        assert calls and settings in unpacked, (notebook, config.__name__)
        assert dataclasses.fields(config)  # a dataclass: its fields are the keyword names `settings` may carry


def test_dataset_overview_stage_on_real_data(mp_index, tmp_path):
    out = run_pipeline(
        "tiny", out=tmp_path / "run", figures_dir=tmp_path / "figs", progress=False, only=["dataset_overview"]
    )
    summ = json.loads((out / "stages/dataset_overview/summary.json").read_text())
    assert summ["rows"] == 36_737 and summ["usable_rows"] == 36_731 and len(summ["outliers"]) == 6
    assert 0.3 < summ["fraction_on_own_hull"] < 0.7
    man = json.loads((out / "manifest.json").read_text())
    assert {d["file"] for d in man["data"]} >= {"cifs.tar.gz", "id_prop.csv"}
    assert (tmp_path / "figs/dataset_overview.png").stat().st_size > 10_000


def test_export_check_fails_when_notebook_and_lib_differ(tmp_path):
    "Editing a notebook without nbdev_export makes the check fail with a clear message."
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    work = tmp_path / "repo"
    for item in ("nbs", "lib", ".ci", "settings.ini"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / item)

    def git(*a):
        return subprocess.run(["git", *a], cwd=work, check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    bin_dir = str(Path(shutil.which("nbdev_export") or ROOT / ".venv/bin/nbdev_export").parent)
    ok = subprocess.run([".ci/check-export", bin_dir], cwd=work, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    nb = nbformat.read(work / "nbs/04_hull.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("#| export") and "def formation_entry" in c.source)
    cell.source = cell.source.replace('"A `PDEntry`', '"Changed: a `PDEntry`')
    nbformat.write(nb, work / "nbs/04_hull.ipynb")
    bad = subprocess.run([".ci/check-export", bin_dir], cwd=work, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "lib/ is out of sync with nbs/" in bad.stdout and "lib/matdisco/hull.py" in bad.stdout


def test_a_run_writes_its_figures_into_its_own_folder_not_the_reference_figures(toy, monkeypatch):
    "make reproduce (tiny) must not overwrite the committed reference figures in the project's figures/."
    import matdisco.runner as R

    tmp, nbs, exps = toy
    project = tmp / "project"
    (project / "figures").mkdir(parents=True)
    monkeypatch.setattr(R, "project_root", lambda: project)
    out = run_pipeline("tiny", out=tmp / "run", experiments=exps[:1], notebooks_dir=nbs, progress=False)
    assert (out / "figures/toy.png").exists() and (out / "figures/toy.pdf").exists()
    assert list((project / "figures").iterdir()) == []


BODY_NOISY = """
import subprocess, sys, warnings
print("LIBRARY NOISE on stderr", file=sys.stderr)
warnings.warn("a library's UserWarning")
# a Dask worker's way
subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('WORKER NOISE\\\\n')"], check=True)
"""


def test_cell_output_goes_to_the_run_log_not_the_terminal(tmp_path, capfd):
    "Command-line output is for the user: what the executed cells say (warnings, worker lines) lands in run.log only."
    import logging

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "n.ipynb", "profile='tiny'\nseed=0\nout_dir='.'\nfigures_dir='f'", BODY_NOISY)
    exps = [Experiment("n", "n.ipynb", "noisy")]
    terminal = []

    class Collect(logging.Handler):
        def emit(self, record):
            terminal.append(record)

    root = logging.getLogger()
    collect = Collect()
    root.addHandler(collect)
    try:
        for run in ("run1", "run2"):
            run_pipeline("tiny", out=tmp_path / run, experiments=exps, notebooks_dir=nbs, progress=False)
    finally:
        root.removeHandler(collect)
    assert not [r for r in terminal if r.name.startswith("papermill")]
    assert [r for r in terminal if r.name == "matdisco.runner"]  # the runner's own records still reach the user
    for run in ("run1", "run2"):
        text = (tmp_path / run / "run.log").read_text()
        assert text.count("LIBRARY NOISE on stderr") == 1  # once, and only in its own run's log
        assert "UserWarning" in text
        assert "WORKER NOISE" in text  # a child process's stderr, past ipykernel
    assert "WORKER NOISE" not in capfd.readouterr().err

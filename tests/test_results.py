"""matdisco.results: the results file and its schema, reference results, stale marking, the rendered report."""

import json
import re
import subprocess

import nbformat
import pytest

from matdisco.core import project_root
from matdisco.evaluate import PUBLISHED_SUN
from matdisco.results import (
    PUBLISHED,
    README_BEGIN,
    README_END,
    collect_results,
    experiment_sources,
    headline_rows,
    load_results,
    merged_results,
    reference_results_dirs,
    render_readme,
    render_report,
    stale_changes,
    validate_results,
)
from matdisco.registry import Experiment
from matdisco.runner import run_pipeline
from matdisco.validation import GNOME_R2SCAN_RETENTION

ROOT = project_root()

BODY = """
import json
from pathlib import Path
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
from matdisco.figures import save_figure
fig, ax = plt.subplots(); ax.plot([0, 1], [0, 1]); ax.set_xlabel("x (1)"); ax.set_ylabel("y (1)")
save_figure(fig, "candidates", figures_dir)
Path(out_dir, "summary.json").write_text(json.dumps({"unique_novel_structures": n, "new_fraction_of_unique": 0.5}))
"""


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    "A one-stage run of a notebook that writes a candidates-style summary.json and a figure."
    tmp = tmp_path_factory.mktemp("results")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile='tiny'\nseed=0\nout_dir='.'\nfigures_dir='f'\nn=0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    (tmp / "nbs").mkdir()
    nbformat.write(nb, tmp / "nbs" / "c.ipynb")
    exps = [Experiment("candidates", "c.ipynb", "toy", {"tiny": {"n": 1234}})]
    run_pipeline("tiny", out=tmp / "run", experiments=exps, notebooks_dir=tmp / "nbs", progress=False)
    return tmp


def test_every_stage_writes_a_results_file_that_follows_the_schema(toy_run):
    result = json.loads((toy_run / "run/stages/candidates/results.json").read_text())
    validate_results(result)
    assert result["profile"] == "tiny" and result["experiment"] == "candidates"
    assert result["metrics"]["unique_novel_structures"] == 1234  # the stage's own numbers
    assert result["provenance"]["wall_s"] > 0
    assert result["provenance"]["packages"]["torch"].startswith("2.")
    assert len(result["provenance"]["git"]["commit"]) == 40
    broken = json.loads(json.dumps(result))
    del broken["provenance"]["git"]
    with pytest.raises(ValueError, match=r"toy file: does not follow the results schema at provenance: 'git'"):
        validate_results(broken, "toy file")
    broken = json.loads(json.dumps(result))
    broken["provenance"]["data"] = [{"dataset": "x", "file": "y", "sha256": "not a checksum"}]
    with pytest.raises(ValueError, match="provenance/data/0/sha256"):
        validate_results(broken, "toy file")


def test_collected_results_render_the_numbers_of_the_file(toy_run):
    dest = toy_run / "results" / "tiny"
    written = collect_results(toy_run / "run", dest, figures=toy_run / "figures")
    assert dest / "candidates.json" in written and (toy_run / "figures" / "candidates.png").exists()
    results = load_results(dest)
    assert headline_rows(results["candidates"]).set_index("quantity").value["unique novel structures"] == "1,234"
    report = render_report(results, ROOT)
    assert "| unique novel structures | 1,234 | structures |" in report
    assert "`tiny` ·" in report
    index = toy_run / "index.ipynb"
    index_cells = [
        nbformat.v4.new_markdown_cell("# intro"),
        nbformat.v4.new_markdown_cell(f"{README_BEGIN}\n{README_END}"),
        nbformat.v4.new_markdown_cell("outro"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=index_cells), index)
    text = render_readme(index, results, ROOT)
    assert text.startswith("# intro\n\n") and text.endswith("\n\noutro\n")
    assert "| candidates | unique novel structures | 1,234 structures | — | `tiny` · " in text
    (dest / "broken.json").write_text("{ not json")
    with pytest.raises(ValueError, match="broken.json: not a JSON results file"):
        load_results(dest)


def test_a_result_is_stale_once_a_later_commit_changes_its_code():
    sources = experiment_sources("05_discovery.ipynb", ROOT)
    assert "nbs/experiments/05_discovery.ipynb" in sources
    assert {"lib/matdisco/discovery.py", "lib/matdisco/hull.py", "lib/matdisco/reference.py"} <= set(
        sources
    )  # transitive
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert stale_changes(head, sources, ROOT) == []
    assert stale_changes("0" * 40, sources, ROOT) == ["unknown"]


def _commit(repo, files: dict, message: str) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=repo, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_only_commits_that_change_what_the_code_does_make_a_result_stale(tmp_path):
    """Reformatting (ruff format), comments and docstrings leave a result fresh; a changed number or a new statement,
    in a module or in a notebook's code cell, makes it stale."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def notebook(code):
        return json.dumps(
            {
                "cells": [
                    {"cell_type": "markdown", "source": ["# prose\n"]},
                    {"cell_type": "code", "source": code.splitlines(keepends=True)},
                ]
            }
        )

    produced = _commit(
        tmp_path,
        {"m.py": "def f(x):\n    return x*2; \n", "e.ipynb": notebook("y = f(1); z = 2")},
        "the commit a result was produced at",
    )
    paths = ["m.py", "e.ipynb"]
    layout = _commit(
        tmp_path,
        {
            "m.py": '# a comment\ndef f(x):\n    """Doubles."""\n    return x * 2\n',
            "e.ipynb": notebook("# why\ny = f(1)\nz = 2\n"),
        },
        "format, comment, document",
    )
    assert stale_changes(produced, paths, tmp_path) == []
    prose = _commit(
        tmp_path, {"e.ipynb": notebook("# why\ny = f(1)\nz = 2\n").replace("# prose", "# Prose")}, "markdown only"
    )
    assert stale_changes(produced, paths, tmp_path) == []
    behaviour = _commit(
        tmp_path, {"m.py": '# a comment\ndef f(x):\n    """Doubles."""\n    return x * 3\n'}, "a number changed"
    )
    assert stale_changes(produced, paths, tmp_path) == [behaviour[:7]]
    assert stale_changes(layout, paths, tmp_path) == [behaviour[:7]]
    assert stale_changes(prose, ["e.ipynb"], tmp_path) == []
    cell = _commit(tmp_path, {"e.ipynb": notebook("y = f(1)\nz = 2\nprint(z)\n")}, "a statement added")
    assert stale_changes(behaviour, paths, tmp_path) == [cell[:7]]


def test_a_result_that_records_its_parameters_is_stale_only_when_they_change():
    """The runner holds every experiment's profiles, so a runner commit used to mark every result stale. A result
    that records its parameters is judged by them instead: another experiment's profile change leaves it fresh, a
    change of its own parameters marks it stale."""
    from matdisco.results import result_label
    from matdisco.registry import EXPERIMENTS

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runner_change = subprocess.run(
        ["git", "log", "-1", "--format=%H", "--", "lib/matdisco/runner.py"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    before = subprocess.run(
        ["git", "rev-parse", f"{runner_change}~1"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    params = next(e for e in EXPERIMENTS if e.name == "dataset_overview").params_for("tiny")
    recorded = params | {"profile": "tiny", "seed": 0, "out_dir": ".", "figures_dir": "figures"}
    result = {
        "experiment": "dataset_overview",
        "profile": "tiny",
        "date": "2026-12-04T00:00:00+00:00",
        "provenance": {"git": {"commit": before, "dirty": False}, "wall_s": 1.0, "parameters": recorded},
    }
    sources = [s for s in experiment_sources("01_dataset_overview.ipynb", ROOT) if s != "lib/matdisco/runner.py"]
    fresh = not stale_changes(before, sources, ROOT)
    assert ("**stale**" not in result_label(result, ROOT)) == fresh  # the runner commit alone does not count
    assert "parameters have changed" not in result_label(result, ROOT)
    result["provenance"]["parameters"] = recorded | {"n_hull_sample": -1}
    assert "**stale**: its `tiny` parameters have changed since" in result_label(result, ROOT)
    result["provenance"]["git"]["commit"] = head
    del result["provenance"]["parameters"]  # an old file: the runner counts again
    assert "**stale**" not in result_label(result, ROOT)


def test_the_readme_form_of_a_stale_label_does_not_change_with_every_later_commit():
    """The README's short label says *that* a result is stale, not how many commits later, so a commit that touches
    code does not have to re-render the README (CI failed on exactly that: '14 later commits' against '13')."""
    from matdisco.results import result_label

    first = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()[0]
    result = {
        "experiment": "discovery",
        "profile": "cpu",
        "date": "2026-12-04T00:00:00+00:00",
        "provenance": {"git": {"commit": first, "dirty": False}, "wall_s": 1.0},
    }
    long_form = result_label(result, ROOT)
    short_form = result_label(result, ROOT, commit=False)
    assert re.search(r"\*\*stale\*\*: \d+ later commit\(s\) changed its code", long_form)
    assert short_form == "`cpu` · 2026-12-04 · **stale**: its code changed after this run"


def test_published_values_are_the_ones_the_chapters_plot():
    by_metric = {(p.experiment, p.metric): p for p in PUBLISHED}
    for row in PUBLISHED_SUN.itertuples():
        name = row.generator.replace(" (published)", "")
        assert by_metric[("evaluate", f"S.U.N. {name}")].value == pytest.approx(100 * row.sun)
    for arity, value in GNOME_R2SCAN_RETENTION.items():
        assert by_metric[("validation", f"r2SCAN retention {arity}")].value == pytest.approx(100 * value)


def test_the_readme_is_rendered_from_the_index_notebook_and_the_committed_results():
    """README.md is `make readme`'s output: nbs/index.ipynb plus the headline table rendered from results/cpu,
    results/tiny."""
    paths = reference_results_dirs(ROOT)
    assert [p.name for p in paths] == ["cpu", "tiny"], "committed reference results"
    readme = (ROOT / "README.md").read_text()
    assert readme == render_readme(ROOT / "nbs" / "index.ipynb", merged_results(paths), ROOT), (
        "README.md differs from its render: run `make readme` and commit it"
    )
    assert len(readme.encode()) <= 15_000
    commit_like = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
    assert not commit_like.findall(readme)


def test_the_mlip_caveats_say_where_the_force_error_sits_and_how_far_the_target_is():
    from matdisco.results import CAVEATS

    metrics = {
        "held_out": {"force_mae_ratio_to_zero": 0.75},
        "power_law": {"force_mae_meV_A": {"alpha": 0.1, "alpha_lo": -0.02, "alpha_hi": 0.22}},
        "force_target_frames": {
            "target_ratio_to_zero": 0.35,
            "n_frames_now": 3000.0,
            "n_frames": 3e6,
            "n_frames_lo": 1e5,
            "n_frames_hi": float("inf"),
        },
        "scored_sets": {
            "held_out_by_kind": [
                {"kind": "md", "force_mae_ratio_to_zero": 0.77},
                {"kind": "relaxation", "force_mae_ratio_to_zero": 14.9},
            ],
            "held_out_all_pairs_seen": {"n_compositions": 47, "force_mae_ratio_to_zero": 0.7},
            "training_fit": {"n_eval_frames": 300, "force_mae_ratio_to_zero": 0.31},
        },
    }
    notes = CAVEATS["mlip"]({"metrics": metrics})
    assert notes[0].startswith("The from-scratch student's held-out forces are 0.75x") and "target: 0.35x" in notes[0]
    assert "α = 0.10 [-0.02, 0.22]" in notes[1] and "about 3e+06 training frames [1e+05, unbounded]" in notes[1]
    # as the results file stores it: JSON has no infinity, so the unbounded upper end comes back as null
    stored = json.loads(json.dumps(metrics).replace("Infinity", "null"))
    assert stored["force_target_frames"]["n_frames_hi"] is None
    assert CAVEATS["mlip"]({"metrics": stored}) == notes
    assert notes[2] == "Held-out forces against zero force, by frame kind: md 0.77x, relaxation 14.90x."
    assert "(47): 0.70x; on 300 of its own training frames: 0.31x." in notes[3]


def test_caveats_stand_next_to_their_numbers_and_gnome_retention_beside_the_new_materials():
    """The report's caveats are computed from the results file (a hand-built one with a known answer here), and the
    validation rows put GNoME's r2SCAN retention (of its new materials) beside our new ones only."""
    from matdisco.results import CAVEATS, headline_rows

    enrichment = [
        {"rounds": str(k), "kind": kind, "filtered_units": n}
        for k in (0, 1)
        for kind, n in (("structural", 40), ("covered", 3 * k))
    ]
    enrichment.append({"rounds": "1-5 pooled", "kind": "structural", "filtered_units": 999})
    arms = [{"arm": "control", "n_new": 3}, {"arm": "all", "n_new": 4}]
    discovery = {"tables": {"enrichment": enrichment, "verdicts_by_arm": arms}}
    notes = CAVEATS["discovery"](discovery)
    assert notes[0].startswith("77 of the filter's 80 structural picks") and notes[1].startswith("3 of the 4 new")
    retention = [
        {
            "level": "x-r2scan",
            "status": status,
            "arity": "binary/ternary",
            "set": "discovery",
            "n_base_stable": 10,
            "retention": 0.9,
            "retention_lo": 0.6,
            "retention_hi": 0.98,
            "r_e_form_with_base": 0.95,
        }
        for status in ("new", "rediscovered")
    ]
    mu = [
        {"level": "base", "element": "Br", "offset": -0.49, "flagged": True, "set": "discovery"},
        {"level": "x-r2scan", "element": "O", "offset": 0.3, "flagged": True, "set": "discovery"},
    ]
    published = [
        {
            "metric": "r2SCAN retention binary/ternary",
            "value": 84,
            "unit": "%",
            "cite": "GNoME",
            "level_of_theory": "DFT r2SCAN vs DFT PBE",
            "source": "s",
        }
    ]
    validation = {
        "experiment": "validation",
        "tables": {"retention": retention, "mu_check": mu},
        "metrics": {"config": {"base_oracle": "base"}},
        "published": published,
    }
    rows = headline_rows(validation).set_index("quantity")
    assert rows.published["retention at x-r2scan (new, binary/ternary, in scope; n = 10)"] == "84 % (GNoME)"
    assert rows.published["retention at x-r2scan (rediscovered, binary/ternary, in scope; n = 10)"] == ""
    notes = CAVEATS["validation"](validation)
    assert (
        "x-r2scan r = 0.95" in notes[0]
        and notes[1].startswith("The μ check flags 1 elements")
        and "Br -0.49" in notes[1]
    )

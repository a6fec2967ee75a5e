"""Every registered experiment notebook, executed end to end by the runner at the `smoke` size.

`make reproduce` once failed in the last cell of the discovery stage while `make test` stayed green, because no test
executed that cell. These tests run each stage as `make reproduce` does (papermill, the same notebooks, the same
library calls), only smaller, and check that it wrote its results and figures."""

import json

import pytest

from matdisco.registry import EXPERIMENTS

from matdisco.runner import run_pipeline

#: What each stage must leave behind (besides done.json and its executed notebook), and the figures it must make.
OUTPUTS = {
    "dataset_overview": (["summary.json", "e_above_own_hull.csv"], ["dataset_overview"]),
    "energy_models": (["metrics.csv", "predictions.csv", "summary.json"], ["energy_parity", "energy_uncertainty"]),
    "candidates": (["candidates.csv", "summary.json"], ["candidates"]),
    "scaling": (["alpha.csv", "sweep/sweep.nc"], ["scaling"]),
    "discovery": (
        ["summary.json", "discovery/rounds.csv", "enrichment.csv", "stable_materials.csv", "verdicts_by_round.csv"],
        ["discovery_rounds"],
    ),
    "evaluate": (["summary.json", "generators.csv"], ["evaluate_generators"]),
    "validation": (
        [
            "summary.json",
            "validation.csv",
            "retention.csv",
            "confusion.csv",
            "cost.csv",
            "mu_check.csv",
            "retention_by_scope.csv",
        ],
        ["validation"],
    ),
    "mlip": (["summary.json", "frames.csv", "learning_curve.csv", "errors.csv", "transfer.csv", "md.csv"], ["mlip"]),
    "conductors": (["summary.json", "selection.csv", "left_out.csv", "md.csv", "arrhenius.csv"], ["conductors"]),
    "retrospective": (
        ["summary.json", "retro_structures_summary.csv", "retro_compositions_summary.csv"],
        ["discovery_retrospective"],
    ),
}


def test_every_registered_experiment_is_covered():
    assert {e.name for e in EXPERIMENTS} == set(OUTPUTS), "add the new experiment to OUTPUTS"
    for e in EXPERIMENTS:
        assert e.params_for("smoke"), f"{e.name}: no smoke parameters"


@pytest.mark.parametrize("name", [e.name for e in EXPERIMENTS])
def test_experiment_runs_end_to_end_at_smoke_size(name, mirror, tmp_path, read_strict_json):
    out = run_pipeline("smoke", only=[name], out=tmp_path / "run", figures_dir=tmp_path / "figs", progress=False)
    stage = out / "stages" / name
    files, figures = OUTPUTS[name]
    for f in files:
        assert (stage / f).exists() and (stage / f).stat().st_size > 0, f"{name}: {f} missing"
    for fig in figures:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figs" / f"{fig}.{ext}").stat().st_size > 5_000, f"{name}: figure {fig}.{ext}"
    for written in stage.glob("*.json"):  # machine-readable means strict JSON: no NaN or Infinity (RFC 8259)
        read_strict_json(written)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["profile"] == "smoke" and man["stages"][name]["status"] == "complete"
    log = (out / "run.log").read_text()
    assert f"stage {name}: complete" in log
    assert "papermill INFO" in log  # the executed cells' output reaches the run log
    if name == "discovery":  # and so do the library's records from the kernel
        assert "matdisco.discovery INFO round 1: evaluated" in log
        assert "retrospective" in json.loads((stage / "summary.json").read_text())

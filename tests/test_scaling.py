"""matdisco.scaling on real mp2018_formation: error falls with N; a killed sweep reruns only its missing cells."""

import json
from dataclasses import replace

import numpy as np
import pytest

from matdisco.scaling import (
    SweepSpec,
    bootstrap_alpha,
    cell_key,
    fit_power_law,
    fit_saturating_power_law,
    run_sweep,
    scaling_splits,
    scaling_table,
    sweep_cells,
    train_rows,
)

SPEC = SweepSpec(
    n_train=(100, 300, 900), model_sizes=((24, 2),), seeds=(0, 1), epochs=8, n_val=100, n_test=200, n_ood=150
)


def test_splits_are_disjoint_and_out_of_distribution(mp_index):
    sp = scaling_splits(mp_index, SPEC)
    sets = {k: set(v) for k, v in sp.items()}
    for a in sets:
        for b in sets:
            if a < b:
                assert not sets[a] & sets[b], (a, b)
    by_row = mp_index.set_index("row_index")
    assert by_row.n_elements[sp["ood_arity"]].min() > 4 and by_row.n_elements[sp["pool"]].max() <= 4
    assert not set(by_row.chemsys[sp["ood_chemsys"]]) & set(by_row.chemsys[sp["pool"]])
    small, big = train_rows(sp, 100, 0), train_rows(sp, 300, 0)
    assert set(small) <= set(big) and not np.array_equal(train_rows(sp, 100, 1), small)  # nested, seeded


def test_error_falls_with_training_set_size_and_sweep_resumes(mirror, tmp_path):
    run = tmp_path / "sweep"
    cells = sweep_cells(SPEC)
    # a "killed" sweep: only 2 of the 6 cells finish (through a real Dask LocalCluster)
    run_sweep(SPEC, run, scheduler="local", n_workers=2, max_cells=2, progress=False)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in run.glob("cells/*/result.json")}
    assert len(finished) == 2
    ds = run_sweep(SPEC, run, scheduler=None, progress=False)  # rerun: only the 4 missing cells
    for key, mtime in finished.items():
        assert (run / "cells" / key / "result.json").stat().st_mtime_ns == mtime
    assert len(list(run.glob("cells/*/result.json"))) == len(cells) == 6
    assert {k: ds.sizes[k] for k in ("n_train", "n_params", "seed")} == {"n_train": 3, "n_params": 1, "seed": 2}
    mae = ds.id_test_mae.mean(["seed", "n_params"])
    assert float(mae.sel(n_train=900)) < float(mae.sel(n_train=100)), mae.values
    assert float(ds.ood_arity_mae.mean(["seed", "n_params"]).sel(n_train=900)) < float(
        ds.ood_arity_mae.mean(["seed", "n_params"]).sel(n_train=100)
    )
    assert ds.id_test_mae.attrs["units"] == "eV/atom" and (run / "sweep.nc").exists()
    assert json.loads(ds.attrs["spec"])["n_train"] == [100, 300, 900]
    table = scaling_table(ds, n_boot=50)
    assert set(table.form) == {"power", "saturating"}
    assert table.selection.str.startswith("undecidable").all() and table.preferred.sum() == 0  # 3 sizes cannot judge
    assert (table.alpha > 0).all() and table.resampled.str.startswith("seeds and test crystals (2 seeds x 200").all()
    assert ds.id_test_abs_error.shape == (3, 1, 2, 200)
    np.testing.assert_allclose(ds.id_test_abs_error.mean("id_test_crystal"), ds.id_test_mae, rtol=1e-5)
    # one parameter changed (epochs): no cell of the old spec is reused, and the old ones are not collected
    other = replace(SPEC, n_train=(100,), seeds=(0,), epochs=1)
    ds2 = run_sweep(other, run, scheduler=None, progress=False)
    assert int(ds2.epochs.max()) == 1 and dict(ds2.sizes)["n_train"] == 1
    assert len(list(run.glob("cells/*/result.json"))) == 7
    assert cell_key(other, 100, 24, 2, 0) != cell_key(SPEC, 100, 24, 2, 0)
    assert cell_key(replace(SPEC, n_train=(100, 5000)), 100, 24, 2, 0) == cell_key(
        SPEC, 100, 24, 2, 0
    )  # grid extended: reused


def test_fits_recover_known_exponents():
    n = np.geomspace(100, 10_000, 6)
    assert fit_power_law(n, 3 * n**-0.35)["alpha"] == pytest.approx(0.35)
    sat = fit_saturating_power_law(n, 3 * n**-0.6 + 0.03)
    assert sat["alpha"] == pytest.approx(0.6, rel=1e-3) and sat["c"] == pytest.approx(0.03, rel=1e-3)
    # with a floor, the saturating form wins on AICc (6 points: enough to judge 3 parameters)
    assert sat["aic"] < fit_power_law(n, 3 * n**-0.6 + 0.03)["aic"]
    rng = np.random.default_rng(0)
    noisy = np.stack([3 * n**-0.35 * np.exp(rng.normal(0, 0.03, len(n))) for _ in range(5)], 1)
    b = bootstrap_alpha(n, noisy, n_boot=200)
    assert b["alpha_lo"] < 0.35 < b["alpha_hi"] and b["alpha_hi"] - b["alpha_lo"] < 0.05


def test_model_selection_says_when_it_cannot_decide():
    from matdisco.scaling import model_selection

    n5, n8 = np.geomspace(100, 10_000, 5), np.geomspace(100, 10_000, 8)

    def pw(n):
        return 3 * n**-0.35

    assert model_selection(fit_power_law(n5, pw(n5)), fit_saturating_power_law(n5, pw(n5)), 5).startswith(
        "undecidable: 5"
    )

    def floor(n):
        return 3 * n**-0.6 + 0.03

    assert model_selection(fit_power_law(n8, floor(n8)), fit_saturating_power_law(n8, floor(n8)), 8) == "saturating"


def test_crystal_bootstrap_is_wider_than_a_seed_bootstrap():
    "Two seeds give 3 distinct seed resamples; resampling the test crystals too shows the finite-test-set noise."
    rng = np.random.default_rng(1)
    n = np.geomspace(100, 3_000, 5)
    per_crystal = np.stack([np.stack([3 * x**-0.35 * rng.exponential(1.0, 300) for _ in range(2)]) for x in n])
    seeds_only = bootstrap_alpha(n, per_crystal.mean(-1), n_boot=300)
    both = bootstrap_alpha(n, per_crystal, n_boot=300)
    assert both["alpha_hi"] - both["alpha_lo"] > 1.5 * (seeds_only["alpha_hi"] - seeds_only["alpha_lo"])
    assert both["alpha_lo"] < 0.35 < both["alpha_hi"] and both["resampled"].startswith("seeds and test crystals")

"""matdisco.scaling on real mp2018_formation: error falls with N; a killed sweep reruns only its missing cells."""
import json

import numpy as np
import pytest

from matdisco.scaling import (SweepSpec, bootstrap_alpha, cell_key, collect_sweep, fit_power_law, fit_saturating_power_law,
                              run_sweep, scaling_splits, scaling_table, sweep_cells, train_rows)

SPEC = SweepSpec(n_train=(100, 300, 900), model_sizes=((24, 2),), seeds=(0, 1), epochs=8, n_val=100, n_test=200, n_ood=150)


def test_splits_are_disjoint_and_out_of_distribution(mp_index):
    sp = scaling_splits(mp_index, SPEC)
    sets = {k: set(v) for k, v in sp.items()}
    for a in sets:
        for b in sets:
            if a < b: assert not sets[a] & sets[b], (a, b)
    by_row = mp_index.set_index("row_index")
    assert by_row.n_elements[sp["ood_arity"]].min() > 4 and by_row.n_elements[sp["pool"]].max() <= 4
    assert not set(by_row.chemsys[sp["ood_chemsys"]]) & set(by_row.chemsys[sp["pool"]])
    small, big = train_rows(sp, 100, 0), train_rows(sp, 300, 0)
    assert set(small) <= set(big) and not np.array_equal(train_rows(sp, 100, 1), small)   # nested, seeded


def test_error_falls_with_training_set_size_and_sweep_resumes(mirror, tmp_path):
    run = tmp_path / "sweep"
    cells = sweep_cells(SPEC)
    # a "killed" sweep: only 2 of the 6 cells finish (through a real Dask LocalCluster)
    run_sweep(SPEC, run, scheduler="local", n_workers=2, max_cells=2, progress=False)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in run.glob("cells/*/result.json")}
    assert len(finished) == 2
    ds = run_sweep(SPEC, run, scheduler=None, progress=False)                 # rerun: only the 4 missing cells
    for key, mtime in finished.items():
        assert (run / "cells" / key / "result.json").stat().st_mtime_ns == mtime
    assert len(list(run.glob("cells/*/result.json"))) == len(cells) == 6
    assert dict(ds.sizes) == {"n_train": 3, "n_params": 1, "seed": 2}
    mae = ds.id_test_mae.mean(["seed", "n_params"])
    assert float(mae.sel(n_train=900)) < float(mae.sel(n_train=100)), mae.values
    assert float(ds.ood_arity_mae.mean(["seed", "n_params"]).sel(n_train=900)) < float(ds.ood_arity_mae.mean(["seed", "n_params"]).sel(n_train=100))
    assert ds.id_test_mae.attrs["units"] == "eV/atom" and (run / "sweep.nc").exists()
    assert json.loads(ds.attrs["spec"])["n_train"] == [100, 300, 900]
    table = scaling_table(ds, n_boot=50)
    assert set(table.form) == {"power", "saturating"} and table.preferred.sum() == 1
    assert (table.alpha > 0).all()


def test_fits_recover_known_exponents():
    n = np.geomspace(100, 10_000, 6)
    assert fit_power_law(n, 3 * n ** -0.35)["alpha"] == pytest.approx(0.35)
    sat = fit_saturating_power_law(n, 3 * n ** -0.6 + 0.03)
    assert sat["alpha"] == pytest.approx(0.6, rel=1e-3) and sat["c"] == pytest.approx(0.03, rel=1e-3)
    # with a floor, the saturating form wins on AICc (6 points: enough to judge 3 parameters)
    assert sat["aic"] < fit_power_law(n, 3 * n ** -0.6 + 0.03)["aic"]
    rng = np.random.default_rng(0)
    noisy = np.stack([3 * n ** -0.35 * np.exp(rng.normal(0, 0.03, len(n))) for _ in range(5)], 1)
    b = bootstrap_alpha(n, noisy, n_boot=200)
    assert b["alpha_lo"] < 0.35 < b["alpha_hi"] and b["alpha_hi"] - b["alpha_lo"] < 0.05

"""matdisco.discovery: rounds recorded at one level of theory, resumable; acquisition and curves."""
import json

import numpy as np
import pytest

from matdisco.discovery import (DiscoveryConfig, acquisition_scores, discovery_curve, run_discovery)
from matdisco.oracle import OracleStore

CFG = DiscoveryConfig(elements=("Li", "Mn", "O"), rounds=2, budget=6, ensemble_size=2, width=24, epochs=6,
                      retrain_epochs=2, max_steps=40, compositions_per_system=2, structures_per_composition=2, n_parents=4)


def test_two_rounds_recorded_and_resumable(mirror, tmp_path):
    run = tmp_path / "disc"
    first = run_discovery(CFG, run, rounds=1)                             # "killed" after round 0
    assert list(first["round"]) == [0]
    store = OracleStore(run / "oracle.sqlite")
    n_relax_round0 = len(store.table("chgnet-0.3.0"))
    done0 = (run / "round_0" / "done.json").stat().st_mtime_ns
    table = run_discovery(CFG, run)                                       # rerun: round 0 is not recomputed
    assert (run / "round_0" / "done.json").stat().st_mtime_ns == done0
    assert list(table["round"]) == [0, 1]
    relaxations = store.table("chgnet-0.3.0")
    assert len(relaxations) <= 3 + 2 * CFG.budget <= 50                   # 3 elemental references + the budget
    assert len(relaxations) > n_relax_round0
    rec = json.loads((run / "round_1" / "done.json").read_text())
    for key in ("generated", "unique_novel", "evaluated", "hit_rate", "hit_rate_structural", "hit_rate_compositional",
                "mae_before_retraining", "new_stable_vs_reference", "new_stable_on_updated_hull", "level_disagreement_mae"):
        assert key in rec
    assert 0 < rec["evaluated"] <= CFG.budget and 0 <= rec["hit_rate"] <= 1
    assert table.cumulative_evaluated.iloc[-1] == table.evaluated.sum()
    assert rec["train_size"] > json.loads((run / "round_0" / "done.json").read_text())["train_size"]   # results were added
    assert 0 < rec["level_disagreement_mae"] < 0.5                      # DFT (pre-2020) vs oracle (MP2020) labels, eV/atom
    assert len(list((run / "trajectories").glob("*.extxyz"))) == len(relaxations)   # MLIP training data kept


def test_acquisition_and_curves():
    mean, std = np.array([0.1, -0.05, 0.0, 0.3]), np.array([0.0, 0.0, 0.2, 0.5])
    assert np.argsort(acquisition_scores(mean, std, kind="greedy"))[0] == 1
    assert np.argsort(acquisition_scores(mean, std, kind="lcb", kappa=1.0))[0] == 3   # most optimistic: 0.3 − 0.5
    with pytest.raises(ValueError, match="unknown acquisition"):
        acquisition_scores(mean, std, kind="ucb")
    assert discovery_curve([2, 0, 1], [True, False, True]).tolist() == [1, 2, 2]

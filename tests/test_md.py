"""matdisco.md: Li diffusivity and conductivity as GNoME computed them, and its superionic label."""
import numpy as np
import pandas as pd
from ase.build import bulk

from matdisco.md import MDConfig, SUPERIONIC_LOG10_MS_CM, is_superionic, li_transport, md_classification, md_supercell


def _random_walk(D_cm2_s, cfg, seed=0):
    "Antifluorite Li2O whose Li atoms random-walk with diffusivity D while O stays put."
    base = bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(2)
    step = np.sqrt(2 * D_cm2_s * 1e16 * cfg.timestep_fs * cfg.sample_every * 1e-15)   # Å per axis per stored frame
    rng = np.random.default_rng(seed); li = base.numbers == 3; pos = base.positions.copy(); frames = []
    for _ in range(cfg.n_steps // cfg.sample_every + 1):
        a = base.copy(); a.positions = pos.copy(); frames.append(a)
        pos[li] += rng.normal(0, step, (li.sum(), 3))
    return frames


def test_gnome_smoothed_max_analysis_recovers_a_known_diffusivity():
    cfg = MDConfig(total_ps=30.0, discard_ps=5.0, sample_every=10)          # smoothed="max", GNoME's setting
    for D in (1e-6, 1e-4):
        tr = li_transport(_random_walk(D, cfg), cfg, kinisi_errors=False)
        assert abs(np.log10(tr["D_cm2_s"] / D)) < 0.1, tr
    # sigma ∝ D (Nernst-Einstein at fixed n, T): two decades of D, two decades of sigma
    lo = li_transport(_random_walk(1e-6, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    hi = li_transport(_random_walk(1e-4, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    assert abs(np.log10(hi / lo) - 2) < 0.15


def test_a_superionic_walk_is_labelled_superionic():
    cfg = MDConfig(total_ps=30.0, discard_ps=5.0, sample_every=10)
    fast = li_transport(_random_walk(1e-4, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]   # liquid-like Li
    slow = li_transport(_random_walk(1e-7, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    assert is_superionic([fast])[0] and not is_superionic([slow])[0]
    assert np.isclose(10 ** SUPERIONIC_LOG10_MS_CM, 15.14, atol=0.01)


def test_too_short_a_run_gives_no_estimate_not_a_number_made_up():
    cfg = MDConfig(total_ps=0.5, discard_ps=0.0, sample_every=10)   # smoothed="max" needs > 1 ps windows
    tr = li_transport(_random_walk(1e-5, cfg), cfg, kinisi_errors=False)
    assert np.isnan(tr["sigma_mS_cm"]) and "DiffusionAnalyzer" in tr["reason"]


def test_supercells_reach_the_minimum_length_and_classification_counts_missing_as_negative():
    a = md_supercell(bulk("Li2O", "fluorite", a=4.61), 10.0)
    assert a.cell.lengths().min() >= 10.0
    t = pd.DataFrame({"structure": ["x", "x"], "calculator": ["oracle", "ours"], "sigma_mS_cm": [100.0, np.nan]})
    assert md_classification(t)["fn"] == 1

"""matdisco.conductors: ordered approximants of OBELiX's measured Li conductors, Arrhenius extrapolation, ranking."""

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from matdisco.conductors import arrhenius_table, obelix_selection, ordered_approximant, rank_correlation
from matdisco.md import MDConfig, li_transport

K_B_EV = 8.617333262e-5  # eV/K, CODATA 2018


@pytest.fixture(scope="module")
def obelix(mirror):
    from matdisco.data import load_obelix

    return load_obelix().frame


def _element_amounts(composition):
    c = Composition(composition).element_composition
    return {e.symbol: c[e] / c.num_atoms for e in c}


def test_every_obelix_approximant_is_ordered_has_li_and_keeps_the_cifs_composition(obelix):
    sel, left = obelix_selection(obelix, 10_000, max_atoms=64, min_length=7.0)
    assert len(sel) >= 30  # measured here: 47 distinct compositions
    assert set(sel.ID) | set(left.ID) == set(obelix.ID) and not set(sel.ID) & set(left.ID)  # every entry accounted for
    assert left.reason.str.len().gt(0).all()
    by_id = obelix.set_index("ID")
    for r in sel.itertuples():
        a = r.approximant
        assert a.is_ordered and "Li" in {e.symbol for e in a.composition.elements} and r.md_atoms <= 64
        want, got = _element_amounts(by_id.structure[r.ID].composition), _element_amounts(a.composition)
        assert set(want) == set(got), r.ID
        assert all(abs(got[e] - want[e]) / want[e] < 0.12 for e in want), (
            r.ID,
            want,
            got,
        )  # 5 % per element before normalising
    assert (sel.ordering == "random").sum() >= 5  # disordered fast conductors (argyrodites) are in reach
    assert not sel.approximant_formula.duplicated().any()


def test_the_sample_spans_the_measured_range(obelix):
    every, _ = obelix_selection(obelix, 10_000, max_atoms=40, min_length=7.0)
    five, _ = obelix_selection(obelix, 5, max_atoms=40, min_length=7.0)
    assert (
        len(five) == 5
        and five.sigma_S_cm.min() == every.sigma_S_cm.min()
        and five.sigma_S_cm.max() == every.sigma_S_cm.max()
    )


def test_partially_occupied_li_sites_are_filled_with_whole_atoms(obelix):
    argyrodite = obelix.set_index("ID").structure["6jf"]  # Li6PS5Br, Li sites 0.5 occupied
    assert not argyrodite.is_ordered
    a, info = ordered_approximant(argyrodite, seed=0)
    assert (
        a.is_ordered and a.composition.reduced_composition == Composition("Li6PS5Br") and info["ordering"] == "random"
    )
    b, _ = ordered_approximant(argyrodite, seed=1)
    assert a.composition == b.composition and a != b  # another seed, another arrangement


def _walk(D_cm2_s, T, cfg, seed=0):
    "Antifluorite Li2O whose Li random-walk with diffusivity D, frames carrying momenta of temperature T."
    from ase.build import bulk

    base = bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(2)
    step = np.sqrt(2 * D_cm2_s * 1e16 * cfg.timestep_fs * cfg.sample_every * 1e-15)
    rng = np.random.default_rng(seed)
    li = base.numbers == 3
    pos = base.positions.copy()
    frames = []
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    for _ in range(cfg.n_steps // cfg.sample_every + 1):
        a = base.copy()
        a.positions = pos.copy()
        MaxwellBoltzmannDistribution(a, temperature_K=T, rng=rng, force_temp=True)
        frames.append(a)
        pos[li] += rng.normal(0, step, (li.sum(), 3))
    return frames, base


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_arrhenius_recovers_the_activation_energy_of_walks_through_the_md_analysis():
    """D(T) = D0 exp(-Ea/kT) random walks at three temperatures go through li_transport (GNoME's analysis) and
    arrhenius_table: the fitted Ea is the walks' to 0.08 eV (each D carries ~0.1 decade of sampling noise, which over
    1/T from 1/1,500 to 1/1,000 K is ~0.06 eV) and the extrapolation is D(300 K) to the decades that error makes."""
    Ea, D0 = 0.3, 1e-2
    rows = []
    for T in (1000.0, 1250.0, 1500.0):
        cfg = MDConfig(temperature_K=T, total_ps=30.0, discard_ps=5.0, sample_every=10)
        frames, base = _walk(D0 * np.exp(-Ea / (K_B_EV * T)), T, cfg, seed=int(T))
        tr = li_transport(frames, cfg, kinisi_errors=False)
        assert abs(tr["analysed_temperature_K"] - T) < 1.0
        rows.append({"structure": "walk", "calculator": "oracle", "temperature_K": T} | tr)
    from pymatgen.io.ase import AseAtomsAdaptor

    fit = arrhenius_table(pd.DataFrame(rows), {"walk": AseAtomsAdaptor.get_structure(base)}).iloc[0]
    assert abs(fit.Ea_eV - Ea) < 0.08, fit
    off = abs(np.log10(fit.D_new_cm2_s / (D0 * np.exp(-Ea / (K_B_EV * 300.0)))))
    assert off < abs(fit.Ea_eV - Ea) / (K_B_EV * 300.0 * np.log(10)) + 0.3  # the Ea error, extrapolated, plus D0's
    assert fit.sigma_new_mS_cm > 0 and fit.n_temperatures == 3


def test_rank_correlation_counts_only_pairs_with_both_values():
    r = rank_correlation([1e-6, 1e-4, 1e-2, 1e-3, np.nan], [0.1, 1.0, 10.0, np.nan, 3.0])
    assert r["n"] == 3 and r["spearman_rho"] == 1.0
    rng = np.random.default_rng(0)
    noise = rank_correlation(rng.random(200), rng.random(200))
    assert abs(noise["spearman_rho"]) < 0.2 and noise["p_value"] > 0.01  # no relation, no correlation
    assert noise["rho_lo"] < 0 < noise["rho_hi"]  # and its interval holds zero
    # the interval covers the true rank correlation at its nominal rate: bivariate normal, Spearman's ρ_s =
    # (6/π) asin(r/2) (Pearson 1907), 400 samples of 20 pairs
    r_true = 0.6
    rho_s = 6 / np.pi * np.arcsin(r_true / 2)
    cover = []
    for _ in range(400):
        x = rng.multivariate_normal([0, 0], [[1, r_true], [r_true, 1]], 20)
        c = rank_correlation(np.exp(x[:, 0]), np.exp(x[:, 1]))
        cover.append(c["rho_lo"] <= rho_s <= c["rho_hi"])
    assert 0.90 < np.mean(cover) < 0.99

"""matdisco.validation: candidates and every competing phase recomputed at r2SCAN level with two potentials shipped in
their wheels (CHGNet r2scan, SevenNet 7net-mf-0 R2SCAN), each against its own hull, on real mp2018 binaries."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matdisco.validation import (
    R2SCAN_POTENTIALS,
    ValidationConfig,
    higher_level_hull,
    level_agreement,
    mu_check,
    retention_by_scope,
    retention_table,
    stability_confusion,
    validate_structures,
    validation_scope,
)

FAST = ValidationConfig(max_steps=100, n_workers=1)
#: Li2O's standard enthalpy of formation: -597.9 kJ/mol (NIST-JANAF) = -6.197 eV per formula unit = -2.066 eV/atom.
LI2O_EXPERIMENT = -2.066
#: r2SCAN's error on the formation enthalpies of solids is ~0.1 eV/atom (Kingsbury et al., Phys. Rev. Mater. 6, 013801
#: (2022): MAE 0.08–0.1 eV/atom vs experiment); mixing raw r2SCAN totals with PBE/MP2020 μ would be off by eVs.
R2SCAN_FORMATION_ERROR = 0.15


@pytest.fixture(scope="module")
def li_o(mirror):
    "Every usable mp2018 Li–O compound (Li2O, Li2O2, LiO2, LiO3), relaxed at each level with its own hull."
    from matdisco.data import load_structures
    from matdisco.reference import space_index

    rows = space_index(["Li", "O"])
    rows = rows[rows.chemsys == "Li-O"]
    frame = load_structures(rows.row_index, progress=False).frame
    return frame, validate_structures(frame.material_id, frame.structure, FAST, scheduler=None)


def test_known_binaries_keep_their_verdict_and_sensible_r2scan_formation_energies(li_o):
    frame, v = li_o
    t = v.table
    base = FAST.base_oracle
    assert set(t.level) == {base, *R2SCAN_POTENTIALS} and t.ok.all()
    assert (t.status == "rediscovered").all() and set(t.level_of_theory) == {"MP2020-PBE", "r2SCAN"}
    e_hull = t.pivot_table(index="formula", columns="level", values="e_hull", aggfunc="min")
    e_form = t.pivot_table(index="formula", columns="level", values="e_form", aggfunc="min")
    for level in (base, *R2SCAN_POTENTIALS):
        assert abs(e_hull.loc["Li2O", level]) < 1e-3, level  # the ground state stays on the hull
        assert e_hull.loc["LiO3", level] > 0.1, level  # a known unstable oxide stays above
        assert abs(e_form.loc["Li2O", level] - LI2O_EXPERIMENT) < R2SCAN_FORMATION_ERROR, level
    # the two potentials agree with each other on the competing phases far better than PBE and r2SCAN differ
    agree = level_agreement(t, v.phases, *R2SCAN_POTENTIALS)
    assert agree["n_phases"] >= 6 and agree["e_form_mae_phases"] < 0.05 and agree["same_verdict"] >= 0.75
    # every stable candidate at the base level is in the retention counts; cost is measured per backend
    r = retention_table(t, base=base)
    n_stable = int((t[t.level == base].e_hull <= 1e-6).sum())
    assert (r[(r.status == "rediscovered") & (r.arity == "all")].n_base_stable == n_stable).all() and n_stable >= 2
    assert stability_confusion(t, base=base, level=R2SCAN_POTENTIALS[0]).to_numpy().sum() == len(frame)
    assert set(v.cost.level) >= set(R2SCAN_POTENTIALS) and (v.cost.s_per_structure > 0).all()


def test_each_level_gets_the_same_mu_check_and_states_its_correlation_with_the_base(li_o):
    "The μ check runs at every level (not only the base's MP2020 one); retention carries the level's correlation."
    frame, v = li_o
    base = FAST.base_oracle
    mu = mu_check(v.phases).set_index(["level", "element"])
    assert set(mu.index.get_level_values("level")) == {base, *R2SCAN_POTENTIALS}
    assert mu.identified.all() and (mu.n_compounds == 4).all()  # Li2O, Li2O2, LiO2, LiO3 fix both offsets
    for level in (base, "chgnet-r2scan"):  # measured: |δ| ≤ 0.05 eV/atom
        assert not mu.loc[level].flagged.any(), level
    r = retention_table(v.table, base=base)
    assert (r.r_e_form_with_base > 0.95).all()  # the levels share training data: near-identical
    by_scope = retention_by_scope(v.table, v.scope, base=base).set_index(["level", "status", "scope"])
    for level in R2SCAN_POTENTIALS:
        assert (
            by_scope.loc[(level, "all", "all"), "n_base_stable"]
            == by_scope.loc[(level, "all", "mp2018"), "n_base_stable"]
            >= 2
        )
        assert by_scope.loc[(level, "all", "elemental_structures"), "n_base_stable"] == 0


def test_higher_level_references_are_the_levels_own(li_o):
    "Raw r2SCAN totals sit eV below MP2020's: μ comes from the level's own relaxed elemental crystals, never MP2020."
    from matdisco.oracle import mp_reference_energies

    hull = higher_level_hull([{"Li", "O"}], "chgnet-r2scan", FAST, scheduler=None)
    mp = mp_reference_energies()
    els = hull.phases[~hull.phases.chemsys.str.contains("-")]
    for el in ("Li", "O"):
        assert hull.mu[el] == els[els.chemsys == el].energy_per_atom.min()
    # MP2020's μ with raw r2SCAN totals would move Li2O's formation energy by this much: far beyond any level's error
    shift = 2 / 3 * (hull.mu["Li"] - mp["Li"]) + 1 / 3 * (hull.mu["O"] - mp["O"])
    assert abs(shift) > 0.3
    assert (hull.phases.e_form[hull.phases.chemsys.str.contains("-")] < 0).all()  # every Li–O compound is bound


#: Standard enthalpies of formation (NIST-JANAF / NBS tables): LiF -616.0 kJ/mol (-6.384 eV per formula unit),
#: Li2S -441.4 kJ/mol (-4.575 eV per formula unit), per atom
LIF_EXPERIMENT = -3.192
LI2S_EXPERIMENT = -1.525


def test_a_fluoride_and_a_sulfide_are_validated_with_each_levels_own_mu(mirror):
    "F and S have no mp2018 crystal: their μ comes from the mirror's starting structures, relaxed at each level."
    from pymatgen.core import Lattice, Structure

    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    li2s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.71), ["S", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    v = validate_structures(["LiF", "Li2S"], [lif, li2s], FAST, scheduler=None)
    assert v.scope.in_scope.all() and (v.table.mu_source == "elemental_structures").all()
    t = v.table.set_index(["formula", "level"])
    assert set(t.index.get_level_values("level")) == {FAST.base_oracle, *R2SCAN_POTENTIALS} and t.ok.all()
    for level in (FAST.base_oracle, *R2SCAN_POTENTIALS):
        assert abs(t.loc[("LiF", level), "e_form"] - LIF_EXPERIMENT) < R2SCAN_FORMATION_ERROR, level
        assert abs(t.loc[("Li2S", level), "e_form"] - LI2S_EXPERIMENT) < R2SCAN_FORMATION_ERROR, level
        assert abs(t.loc[("LiF", level), "e_hull"]) < 0.01 and abs(t.loc[("Li2S", level), "e_hull"]) < 0.01, level


def test_out_of_scope_inputs_are_reported_not_computed(mirror):
    scope = validation_scope(["KrF2"])
    assert not scope.in_scope.iloc[0] and "of Kr in mp2018_formation or elemental_structures" in scope.reason.iloc[0]
    assert not validation_scope(["Li5FeO4"], ValidationConfig(max_phases=10)).in_scope.iloc[0]
    sources = validation_scope(["Li2O", "LiF", "KrF2"]).set_index("formula").mu_source.to_dict()
    assert sources == {"Li2O": "mp2018", "LiF": "elemental_structures", "KrF2": ""}


def test_validation_settings_key_the_relaxation_store():
    assert FAST.store("chgnet-r2scan").path != ValidationConfig(max_steps=50).store("chgnet-r2scan").path
    assert FAST.key() != ValidationConfig(oracles=("chgnet-r2scan",)).key()


#: MgO's standard enthalpy of formation: -601.6 kJ/mol (NIST-JANAF) = -6.235 eV per formula unit = -3.12 eV/atom.
MGO_EXPERIMENT = -3.12
#: Cheap settings for the test only (one engine, cutoff and k-point density for MgO, Mg and O alike).
TEST_DFT = {"ecut": 400.0, "kpt_density": 2.0}


def test_gpaw_pbe_and_r2scan_single_points_are_deterministic_and_physical(mirror):
    """A 2-atom MgO cell, hcp Mg and an O2 crystal (mp2018 geometries) with GPAW: the same single point twice gives
    the same energy, both formation energies are negative, and r2SCAN binds MgO more than PBE does (PBE's
    overbound O2 reference makes oxides too weak; r2SCAN moves toward experiment)."""
    from matdisco.oracle import dft_energy_per_atom, formation_energy_per_atom, gpaw_available

    if why := gpaw_available():
        pytest.skip(why)
    from matdisco.data import load_structures, read_index

    idx = read_index()
    fr = load_structures(idx[idx.material_id.isin(["mp-1265", "mp-153", "mp-611836"])].row_index, progress=False).frame
    s = dict(zip(fr.material_id, fr.structure))
    assert len(s["mp-1265"]) == 2
    e_form = {}
    for xc in ("gpaw-pbe", "gpaw-r2scan"):
        e = {m: dft_energy_per_atom(s[m], xc, TEST_DFT) for m in s}
        e_form[xc] = formation_energy_per_atom(
            [s["mp-1265"]], [e["mp-1265"]], {"Mg": e["mp-153"], "O": e["mp-611836"]}
        )[0]
        if xc == "gpaw-r2scan":
            assert dft_energy_per_atom(s["mp-1265"], xc, TEST_DFT) == pytest.approx(e["mp-1265"], abs=1e-6)
    assert e_form["gpaw-pbe"] < 0 and e_form["gpaw-r2scan"] < e_form["gpaw-pbe"] - 0.1
    assert abs(e_form["gpaw-r2scan"] - MGO_EXPERIMENT) < abs(e_form["gpaw-pbe"] - MGO_EXPERIMENT)


def test_a_matdisco_evaluate_output_is_validated_from_its_own_relaxations(li_o):
    """evaluate → evaluation_candidates → validate_structures: the base verdict is the evaluation's own, nothing relaxed
    again."""
    from matdisco.evaluate import EvaluateConfig, evaluate_structures
    from matdisco.oracle import shared_store
    from matdisco.validation import evaluation_candidates

    frame, _ = li_o
    structures, cfg = list(frame.structure), EvaluateConfig(max_steps=100, n_workers=1)
    ev = evaluate_structures(structures, list(frame.material_id), config=cfg, scheduler=None, progress=False)
    store = shared_store("relaxations", cfg.oracle, fmax=cfg.fmax, max_steps=cfg.max_steps, timeout_s=cfg.timeout_s)
    n_relaxed = len(store.table(cfg.oracle))
    c = evaluation_candidates(ev, structures, select="converged")
    assert list(c.id) == list(ev.structures.id[ev.structures.converged])
    stable = evaluation_candidates(ev, structures, select="stable")
    assert set(stable.formula) == set(ev.structures.formula[ev.structures.stable_mbd]) >= {"Li2O"}
    assert evaluation_candidates(ev, structures, select="sun").empty  # known crystals are not novel
    v = validate_structures(
        c.id, c.structure, ValidationConfig(oracles=(), n_workers=1), base_energies=c.energy_per_atom, scheduler=None
    )
    assert len(store.table(cfg.oracle)) == n_relaxed
    np.testing.assert_allclose(
        v.table.set_index("id").e_hull.reindex(c.id).to_numpy(),
        ev.structures.set_index("id").e_hull.reindex(c.id).to_numpy(),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="as submitted"):
        evaluation_candidates(ev, structures[:2])


def test_dft_subset_of_sampled_candidates_takes_only_their_elements_references(li_o):
    """phases=False, max_candidates=1: one Li–O candidate and the μ structures of Li and O, nothing else, at low
    settings."""
    from matdisco.oracle import gpaw_available, gpaw_elements
    from matdisco.validation import dft_validation

    if why := gpaw_available():
        pytest.skip(why)
    assert {"Li", "O", "Mg"} <= gpaw_elements() and not {"Ac", "Tc", "Pu"} & gpaw_elements()  # gpaw-data's PAW datasets
    _, v = li_o
    d = dft_validation(v, max_sites=4, phases=False, max_candidates=1, seed=0, settings=TEST_DFT, scheduler=None)
    dft = d[d.level.isin(["gpaw-pbe", "gpaw-r2scan"])]
    assert (dft[dft.kind == "candidate"].groupby("level").size() == 1).all()
    assert set(dft.formula[dft.kind == "phase"]) == {"Li", "O2"}  # only each element's μ structure
    cand = dft[dft.kind == "candidate"]
    assert np.isfinite(cand.e_form).all() and (cand.e_form < 0).all()  # every Li–O compound is bound
    assert (dft.e_form[dft.kind == "phase"] == 0).all() and (dft.wall_s > 0).all()
    again = dft_validation(v, max_sites=4, phases=False, max_candidates=1, seed=0, settings=TEST_DFT, scheduler=None)
    pd.testing.assert_frame_equal(d, again)  # the same sample, from the store


def test_the_validation_of_li_o_binaries_is_what_it_was_before_the_refactor(li_o):
    """Table and competing phases written by `validate_structures` before it was split into steps (one 159-line
    function, commit 23d9709), for the same crystals and settings as the `li_o` fixture: no number moved."""
    from test_evaluate import assert_same_table

    _, v = li_o
    frozen = Path(__file__).parent / "fixtures" / "validation"
    assert_same_table(v.table, frozen / "validation_li_o.csv")
    assert_same_table(v.phases, frozen / "validation_li_o_phases.csv")


def test_the_chapter_tables_pool_every_set_and_count_every_candidate_once_per_level(li_o, tmp_path):
    """`validation_tables` is what the experiment writes: each set's rows tagged with its name, every candidate in one
    cell of each level's confusion matrix, the μ check at every level, GPAW costs joining the potentials' costs, and
    CSVs that read back as written."""
    from matdisco.validation import dft_cost, validation_summary, validation_tables

    frame, v = li_o
    sets = {"known binaries": v, "again": v}
    dft = pd.DataFrame(
        {"set": "again", "level": "gpaw-r2scan", "wall_s": [2.0, 4.0, np.nan], "n_sites": [3, 5, 7], "e_form": 0.0}
    )
    tables = validation_tables(sets, FAST, stable_formulas={"again": ["Li2O"]}, dft=dft)
    for name in ("validation", "retention", "retention_by_scope", "mu_check", "confusion"):
        table = getattr(tables, name)
        assert table.set.value_counts().to_dict() == {"known binaries": len(table) // 2, "again": len(table) // 2}, name
    confusion = tables.confusion[tables.confusion.set == "known binaries"]
    assert confusion.groupby("level").n.sum().to_dict() == {level: len(frame) for level in FAST.oracles}
    assert set(tables.mu_check.level) == {FAST.base_oracle, *FAST.oracles}
    gpaw = tables.cost[tables.cost.role == "DFT single points"]
    assert gpaw[["n", "s_per_structure", "mean_sites"]].values.tolist() == [[2, 3.0, 4.0]]  # the NaN is not timed
    assert dft_cost(dft).columns.tolist() == ["set", "level", "n", "s_per_structure", "mean_sites", "role"]
    assert [a["set"] for a in tables.agreement] == ["known binaries", "again"]
    tables.write(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "confusion.csv"), tables.confusion, check_dtype=False)
    summary = validation_summary(tables, sets, FAST, dft=pd.DataFrame(), dft_skipped="GPAW not installed")
    assert summary["dft"] == "GPAW not installed" and summary["key"] == FAST.key()
    assert len(summary["retention"]) == len(tables.retention)


def test_your_own_calculator_is_a_higher_level_and_validates_as_the_named_one(li_o, tmp_path):
    """CHGNet's r2SCAN model as a plain ASE calculator, built by hand and named as a level of its own, relaxes the
    candidates and every competing Li–O phase in this process, into the store given, against its own hull: the
    named 'chgnet-r2scan' level's numbers (same model: to relaxation round-off) and verdicts, keyed by its own name."""
    from dataclasses import replace

    from chgnet.model.dynamics import CHGNetCalculator
    from test_evaluate import RELAXED_ENERGY_ROUND_OFF

    from matdisco.oracle import OracleStore, load_chgnet

    frame, named = li_o
    calculator = CHGNetCalculator(model=load_chgnet("r2scan"), use_device="cpu")
    store = OracleStore(tmp_path / "mine.sqlite")
    mine = replace(FAST, oracles=("r2scan-by-hand",))
    v = validate_structures(
        frame.material_id,
        frame.structure,
        mine,
        calculators={"r2scan-by-hand": calculator},
        store=store,
        scheduler=None,
    )
    assert set(v.table.level) == {FAST.base_oracle, "r2scan-by-hand"}
    assert set(store.table().oracle) == {"r2scan-by-hand"}  # the base level kept to the machine-wide caches
    ours = v.table[v.table.level == "r2scan-by-hand"].set_index("id")
    theirs = named.table[named.table.level == "chgnet-r2scan"].set_index("id").loc[ours.index]
    np.testing.assert_allclose(ours[["e_form", "e_hull"]], theirs[["e_form", "e_hull"]], atol=RELAXED_ENERGY_ROUND_OFF)
    assert (ours.converged == theirs.converged).all() and ours.ok.all()
    decided = theirs.e_hull.abs() > RELAXED_ENERGY_ROUND_OFF  # on the hull's line: round-off decides
    assert ((ours.e_hull <= 1e-6) == (theirs.e_hull <= 1e-6))[decided].all()
    phases = v.phases[v.phases.level == "r2scan-by-hand"].set_index("material_id").sort_index()
    named_phases = named.phases[named.phases.level == "chgnet-r2scan"].set_index("material_id").loc[phases.index]
    np.testing.assert_allclose(phases.e_form, named_phases.e_form, atol=RELAXED_ENERGY_ROUND_OFF)
    with pytest.raises(ValueError, match="registered oracles' names"):
        validate_structures(frame.material_id, frame.structure, FAST, calculators={"chgnet-r2scan": calculator})
    with pytest.raises(ValueError, match="not a level of this validation"):
        validate_structures(frame.material_id, frame.structure, FAST, calculators={"typo": calculator})
    with pytest.raises(ValueError, match="pass store="):
        validate_structures(frame.material_id, frame.structure, mine, calculators={"r2scan-by-hand": calculator})

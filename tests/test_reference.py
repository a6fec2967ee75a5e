"""matdisco.reference: the data set at the oracle's level, from a machine-wide content-addressed cache."""

import json

import numpy as np
import pytest

from matdisco.oracle import chgnet_energies, shared_store, single_points
from matdisco.reference import relabel


def test_relabel_fills_the_cache_once_and_matches_direct_single_points(mirror):
    ref = relabel("chgnet-0.3.0", elements=("Li", "O"), scheduler=None)
    store = shared_store("single_points", "chgnet-0.3.0")
    n_cached = len(store.table("chgnet-0.3.0:sp"))
    assert len(ref.frame) == 10 and ref.n_failed == 0 and n_cached >= 10
    # the cache holds exactly what the oracle computes
    direct = chgnet_energies(list(ref.frame.structure))
    np.testing.assert_allclose(ref.frame.energy_per_atom_oracle, direct, atol=1e-5)
    # Li2O at the oracle's level is close to its DFT formation energy (MP: about -2.07 eV/atom)
    li2o = ref.frame[ref.frame.reduced_formula == "Li2O"].e_form_oracle.min()
    assert -2.3 < li2o < -1.8
    assert ref.level_gap < 0.1 and set(ref.elemental.element) == {"Li", "O"}
    # a second relabel computes nothing: same rows, no new cache entries, and the Dask path agrees
    again = relabel("chgnet-0.3.0", elements=("Li", "O"), scheduler="local", n_workers=2)
    assert len(store.table("chgnet-0.3.0:sp")) == n_cached
    np.testing.assert_array_equal(again.frame.e_form_oracle, ref.frame.e_form_oracle)
    # every crystal on the oracle-level hull has E_hull >= 0 and the elements sit at zero
    eh = ref.hull().e_above_hull_many(ref.frame.reduced_formula, ref.frame.e_form_oracle)
    assert np.all(eh >= -1e-9)


def test_the_cache_is_keyed_by_oracle_and_version(mirror, tmp_path, monkeypatch):
    a = shared_store("single_points", "chgnet-0.3.0").path
    assert a != shared_store("single_points", "chgnet-r2scan").path
    assert "chgnet-0.3.0--chgnet-" in a.name  # the package version is in the name
    assert (
        shared_store("relaxations", "chgnet-0.3.0", fmax=0.1).path
        != shared_store("relaxations", "chgnet-0.3.0", fmax=0.05).path
    )
    monkeypatch.setenv("MATDISCO_CACHE", str(tmp_path))
    assert shared_store("single_points", "chgnet-0.3.0").path.is_relative_to(tmp_path)


def test_single_points_skip_what_is_stored_and_mark_failures(mirror, tmp_path):
    from pymatgen.core import Lattice, Structure
    from matdisco.oracle import OracleStore

    store = OracleStore(tmp_path / "sp.sqlite")
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    e1 = single_points([nacl, nacl], store, "chgnet-0.3.0")  # a duplicate is computed once
    assert len(store.table("chgnet-0.3.0:sp")) == 1 and e1[0] == e1[1] and np.isfinite(e1[0])
    assert single_points([nacl], store, "chgnet-0.3.0")[0] == e1[0]


def test_relabel_command_writes_the_reference_table(mirror, tmp_path, capsys):
    from matdisco.cli import main

    assert (
        main(["relabel", "--elements", "Li", "O", "--workers", "1", "--scheduler", "local", "--out", str(tmp_path)])
        == 0
    )
    import pandas as pd

    t = pd.read_csv(tmp_path / "oracle_reference.csv")
    assert len(t) == 10 and t.e_form_oracle.notna().all()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["crystals"] == 10 and s["failed"] == 0 and "level_gap_mae" in json.loads(capsys.readouterr().out)


def test_coverage_finds_the_holes_of_the_reference_hull(mirror):
    from matdisco.reference import COVERAGE_TOLERANCE, ReferenceCoverage

    cov = ReferenceCoverage()
    # DyF3 (MP) is not in mp2018_formation: its Dy-F hull is the elements alone, ~4 eV/atom above MP's at DyF2
    assert cov.hull_gap("DyF2") > 1 and not cov.covered("DyF2")
    assert cov.hull_gap("LiMnO2") < 0.005 and cov.covered("LiFePO4") and cov.covered("NaCl")
    # the reference is a subset of MP, so its hull is never below MP's
    assert min(cov.hull_gap(f) for f in ("Li2FeO2", "SmCl2", "CaTiO3", "Li5Mn7O16")) >= -1e-9
    assert cov.tolerance == COVERAGE_TOLERANCE == 0.025
    # ZnI2 is in MP (matbench_mp_e_form) but not in mp2018_formation: a hole found by the gap, 0.62 eV/atom
    assert cov.hull_gap("ZnI2") > 0.5 and cov.empty_pairs("ZnI2") == [] and not cov.covered("ZnI2")
    # Li and Ar form no compound anywhere: an empty pair, not a region the reference covers
    assert cov.empty_pairs("LiAr") == ["Li-Ar"] and not cov.covered("LiAr")
    assert cov.empty_pairs("La7NdN8") == [] and cov.covered("La7NdN8")  # La-Nd: two metals may well form no compound


def test_each_hit_is_classified_by_what_the_references_can_verify(mirror):
    "Issue #24's cases: post-2018 MP compounds on MP's hull, a known unstable one, a hole, a new composition."
    from matdisco.data import read_index
    from matdisco.reference import hit_verdicts

    mp2018 = set(read_index().reduced_formula.dropna())
    mp_on_hull_not_in_mp2018 = ["ZnI2", "CdBr2", "WSe2"]  # in MP's lists (2018's matbench) and on its hull
    assert not set(mp_on_hull_not_in_mp2018) & mp2018
    assert hit_verdicts(mp_on_hull_not_in_mp2018) == ["verified_rediscovery"] * 3
    # AlInN2 (mp-1247201) is in no 2018 list: MP added it later, 0.018 eV/atom above its hull
    assert hit_verdicts(["AlInN2"]) == ["verified_rediscovery"]
    assert hit_verdicts(["NaN"]) == ["verified_false_positive"]  # sodium nitride: 0.17 eV/atom above MP's hull
    # an unknown composition where mp2018's hull lacks MP's ZnI2: its stability cannot be verified, it is not dropped
    assert hit_verdicts(["Zn3I2", "Li3Ar"]) == ["reference_hole", "reference_hole"]
    assert hit_verdicts(["Li5Ti3O9"]) == ["new"]  # unknown, in a system the reference covers


def test_the_retrospective_snapshot_hides_what_mp_learned_after_2018(mirror):
    from matdisco.reference import COVERAGE_TOLERANCE, known_reduced_formulas, later_known_stable

    merged, in_2018 = known_reduced_formulas(), known_reduced_formulas("mp2018")
    assert in_2018 < merged
    assert {"Li2O", "AlN", "ZnI2"} <= in_2018  # ZnI2: matbench_mp_e_form, MP's 2018 database
    assert "AlInN2" in merged and "AlInN2" not in in_2018
    targets = later_known_stable(("Al", "In", "N"))
    assert set(targets.reduced_formula) == {"AlInN2", "Al2InN3", "AlIn2N3"}
    assert (targets.e_hull_mp <= COVERAGE_TOLERANCE).all() and not set(targets.reduced_formula) & in_2018
    assert len(later_known_stable(max_atoms=16)) < len(later_known_stable())
    with pytest.raises(ValueError, match="unknown snapshot"):
        known_reduced_formulas("mp2024")

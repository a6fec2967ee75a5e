"""matdisco.hull on the real mp2018_formation hull."""

import math

import pytest
from pymatgen.analysis.phase_diagram import PhaseDiagram

from matdisco.hull import ReferenceHull, e_above_own_hull, formation_entry


@pytest.fixture(scope="module")
def mp_hull(mp_index):
    return ReferenceHull.from_frame(mp_index[~mp_index.is_outlier])


def test_li2o_and_li2o2_on_the_li_o_hull(mp_hull, mp_index):
    li_o = mp_index[mp_index.chemsys == "Li-O"].set_index("material_id")
    eh = dict(zip(li_o.reduced_formula, mp_hull.e_above_hull_many(li_o.formula, li_o.formation_energy_per_atom)))
    assert eh["Li2O"] == pytest.approx(0, abs=1e-9) and eh["Li2O2"] == pytest.approx(0, abs=1e-9)
    assert eh["LiO2"] > 0.05 and eh["LiO3"] > 0.15  # superoxide, ozonide: above the hull in PBE
    # a hypothetical Li2O polymorph 50 meV/atom higher sits exactly 50 meV/atom above the hull
    e_li2o = li_o[li_o.reduced_formula == "Li2O"].formation_energy_per_atom.min()
    assert mp_hull.e_above_hull("Li2O", e_li2o + 0.05) == pytest.approx(0.05, abs=1e-9)


def test_restricted_hull_equals_full_phase_diagram(mp_hull, mp_index):
    "Per-system hulls give the same E_hull as one PhaseDiagram over the whole Li-Fe-P-O space."
    sub = mp_index[mp_index.chemsys.apply(lambda c: set(c.split("-")) <= {"Li", "Fe", "P", "O"}) & ~mp_index.is_outlier]
    entries = [formation_entry(f, e) for f, e in zip(sub.formula, sub.formation_energy_per_atom)]
    from pymatgen.analysis.phase_diagram import PDEntry
    from pymatgen.core import Composition

    full = PhaseDiagram(entries + [PDEntry(Composition(el), 0.0) for el in ["Li", "Fe", "P", "O"]])
    for f, e in list(zip(sub.formula, sub.formation_energy_per_atom))[:60]:
        expected = e - full.get_hull_energy_per_atom(Composition(f))
        assert mp_hull.e_above_hull(f, e) == pytest.approx(expected, abs=1e-8)


def test_known_stable_olivine_and_nan_handling(mp_hull, mp_index):
    lfp = mp_index[mp_index.reduced_formula == "LiFePO4"]
    assert len(lfp) >= 1
    assert mp_hull.e_above_hull_many(lfp.formula, lfp.formation_energy_per_atom).min() == pytest.approx(0, abs=1e-9)
    assert math.isnan(mp_hull.e_above_hull("LiFePO4", float("nan")))
    with pytest.raises(ValueError, match="not a number"):
        formation_entry("Li2O", float("nan"), "bad")


def test_no_row_below_its_own_hull(mp_index):
    eh = e_above_own_hull(mp_index[~mp_index.is_outlier], n_sample=300, seed=0)
    assert (eh >= -1e-9).all() and 0.2 < (eh <= 1e-6).mean() < 0.9

"""matdisco.oracle: CHGNet 0.3.0 (weights shipped in the wheel) and formation energies on the MP2020 scale."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from matdisco.oracle import chgnet_energies, formation_energy_per_atom, mp_reference_energies


def test_chgnet_formation_energy_of_rocksalt_nacl_is_close_to_experiment(mirror):
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    e = chgnet_energies([nacl])
    ef = formation_energy_per_atom([nacl], e, mp_reference_energies())[0]
    # NaCl: experimental ΔH_f = −411 kJ/mol = −2.13 eV/atom (NIST-JANAF); MP2020 PBE ≈ −2.1 eV/atom
    assert -2.4 < ef < -1.9


def test_reference_energies_and_missing_element():
    refs = {"Li": -1.9, "O": -4.9}
    with pytest.raises(KeyError, match="no elemental reference energy for \\['Fe'\\]"):
        formation_energy_per_atom(["FeO"], [-7.0], refs)
    # an element in its reference state has zero formation energy
    assert formation_energy_per_atom(["Li"], [-1.9], refs)[0] == pytest.approx(0)


# ---- relaxations, store, batches ---------------------------------------------------------------------------

from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from matdisco.oracle import (
    OracleStore,
    RelaxResult,
    TableOracle,
    make_calculator,
    mp2020_correction,
    relax,
    run_oracle_batch,
    structure_hash,
)


def _rattled_nacl(seed=0, a=5.9):
    atoms = bulk("NaCl", "rocksalt", a=a)
    atoms.rattle(0.08, seed=seed)
    return AseAtomsAdaptor.get_structure(atoms)


def test_relaxation_lowers_the_energy_and_keeps_every_frame():
    s = _rattled_nacl()
    r = relax(s, make_calculator("chgnet-0.3.0"), oracle="chgnet-0.3.0", fmax=0.05, max_steps=200)
    assert r.ok and r.converged and r.n_steps == len(r.frames) - 1 > 3
    assert r.energy_per_atom < r.initial_energy_per_atom - 1e-3  # relaxation lowers the energy
    energies = [f["energy"] for f in r.frames]
    assert energies[-1] == min(energies) or energies[-1] - min(energies) < 1e-3
    f0 = np.array(r.frames[0]["forces"])
    assert np.abs(f0.sum(0)).max() < 1e-3  # forces sum to zero (Newton III)
    from pymatgen.core import Structure

    final = Structure.from_dict(r.final_structure)
    a = (final.volume / len(final) * 8) ** (1 / 3)  # rock-salt conventional cell: 8 atoms
    assert 5.55 < a < 5.85, a  # PBE NaCl: a ≈ 5.70 Å (exp. 5.64); started at 5.9


def test_failures_are_recorded_not_raised():
    r = relax(_rattled_nacl(), make_calculator("chgnet-0.3.0"), timeout_s=0.0)
    assert not r.ok and "timeout" in r.reason
    with pytest.raises(ValueError, match="unknown oracle"):
        make_calculator("no-such-oracle")
    t = TableOracle({"mp-1": -1.0})
    assert t("mp-1").energy_per_atom == -1.0 and not t("mp-2").ok and t("mp-2").reason == "not in the labeled set"


def test_store_is_append_only_and_batches_resume(tmp_path):
    store = OracleStore(tmp_path / "oracle.sqlite")
    structs = [_rattled_nacl(seed=k) for k in range(3)]
    rows = run_oracle_batch(structs[:2], store, fmax=0.1, max_steps=60, scheduler="local", n_workers=2, progress=False)
    assert rows.ok.all() and len(store.table()) == 2
    created = dict(zip(store.table().structure_hash, store.table().created))
    rows = run_oracle_batch(structs, store, fmax=0.1, max_steps=60, scheduler=None, progress=False)  # 1 new
    t = store.table()
    assert len(t) == 3 and all(dict(zip(t.structure_hash, t.created))[k] == v for k, v in created.items())
    assert list(rows.structure_hash) == [structure_hash(s) for s in structs]
    assert len(list((tmp_path / "trajectories").glob("*.extxyz"))) == 3
    from ase.io import read

    frames = read(next((tmp_path / "trajectories").glob("*.extxyz")), index=":")
    assert len(frames) >= 2 and frames[0].get_forces().shape == (2, 3)
    assert not store.add(RelaxResult(t.structure_hash[0], "NaCl", "chgnet-0.3.0", False, "dup"))  # never overwritten


def test_mp2020_correction_of_a_raw_pbe_u_oxide():
    from pymatgen.core import Lattice, Structure

    fe2o3 = Structure(
        Lattice.cubic(5.0),
        ["Fe", "Fe", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0], [0.75, 0, 0.25], [0, 0.75, 0.75]],
    )
    delta = mp2020_correction(fe2o3, -40.0) + 40.0
    # MP2020 (Wang et al., Sci. Rep. 11, 15496 (2021)): Fe (+U, oxide) -2.256 eV/Fe, oxide -0.687 eV/O
    assert delta == pytest.approx(2 * -2.256 + 3 * -0.687, abs=0.01)
    nacl = _rattled_nacl()
    assert mp2020_correction(nacl, -10.0) == pytest.approx(
        -10.0 - 0.614, abs=0.01
    )  # primitive cell: one Cl, -0.614 eV/Cl


def test_gpaw_cell_reduces_only_skewed_cells_and_keeps_the_crystal():
    "GPAW warns that results may be wrong outside 40-140 degree cell angles: such cells go to it Niggli-reduced."
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from matdisco.oracle import GPAW_CELL_ANGLES, gpaw_cell

    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    assert gpaw_cell(nacl) is nacl  # 60-degree primitive cell: left as it is
    skewed = nacl.copy()
    skewed.make_supercell([[1, 2, 0], [0, 1, 0], [0, 0, 1]])  # unimodular: the same cell, other basis
    assert len(skewed) == len(nacl) and not all(
        GPAW_CELL_ANGLES[0] < a < GPAW_CELL_ANGLES[1] for a in skewed.lattice.angles
    )
    reduced = gpaw_cell(skewed)
    assert all(60 - 1e-6 <= a <= 120 + 1e-6 for a in reduced.lattice.angles)
    assert len(reduced) == len(skewed) and abs(reduced.volume - skewed.volume) < 1e-6
    assert StructureMatcher(primitive_cell=False, scale=False).fit(reduced, skewed)
    np.testing.assert_allclose(
        chgnet_energies([reduced]), chgnet_energies([skewed]), atol=1e-4
    )  # same crystal, same energy


def test_magnetic_elements_are_those_materials_project_starts_with_a_moment():
    """The DFT comparison leaves out what MP runs magnetic: the constant is MPRelaxSet's MAGMOM table, element by
    element."""
    import re
    from pymatgen.io.vasp.sets import MPRelaxSet
    from matdisco.oracle import MAGNETIC_ELEMENTS, SPIN_POLARISED_ELEMENTS

    assert MAGNETIC_ELEMENTS == {re.sub(r"[0-9+-]+$", "", k) for k in MPRelaxSet.CONFIG["INCAR"]["MAGMOM"]}
    assert {"Fe", "Co", "Ni", "Mn"} <= MAGNETIC_ELEMENTS and not MAGNETIC_ELEMENTS & {"Li", "Mg", "O", "Cl", "Hg"}
    assert not MAGNETIC_ELEMENTS & SPIN_POLARISED_ELEMENTS

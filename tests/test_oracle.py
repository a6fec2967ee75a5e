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

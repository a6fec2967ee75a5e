"""matdisco.models: physical invariances of the GNN, smooth cutoff, save/load."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from pymatgen.core import Lattice, Structure

from matdisco.graphs import collate
from matdisco.models import (
    CompositionModel,
    CrystalGNN,
    TargetNormalizer,
    composition_matrix,
    count_parameters,
    load_model,
    polynomial_envelope,
    save_model,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CrystalGNN(width=24, depth=2, cutoff=4.5).double().eval()


def _energy(model, s):
    g = collate([s], model.config.cutoff, dtype=torch.float64)
    return float(model(g)[0])


def test_invariant_under_rotation_translation_and_permutation(model):
    s = Structure(
        Lattice.from_parameters(4.2, 5.0, 5.9, 82, 97, 104),
        ["Li", "Fe", "O", "O"],
        [[0.1, 0.2, 0.3], [0.55, 0.45, 0.6], [0.3, 0.8, 0.1], [0.8, 0.1, 0.75]],
    )
    e0 = _energy(model, s)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rotated = Structure(Lattice(s.lattice.matrix @ q.T), s.species, s.cart_coords @ q.T, coords_are_cartesian=True)
    moved = s.copy()
    moved.translate_sites(range(len(s)), [0.37, -0.21, 0.9])
    permuted = Structure(s.lattice, [s.species[i] for i in (2, 0, 3, 1)], [s.frac_coords[i] for i in (2, 0, 3, 1)])
    for other in (rotated, moved, permuted):
        assert _energy(model, other) == pytest.approx(e0, abs=1e-10)


def test_energy_per_atom_is_intensive_and_smooth_at_cutoff(model):
    si = bulk("Si", "diamond", a=5.43)
    assert _energy(model, si.repeat((2, 2, 1))) == pytest.approx(_energy(model, si), abs=1e-10)
    # stretching a dimer through the cutoff changes the energy continuously (envelope -> 0)
    c = model.config.cutoff
    e = [
        _energy(model, Structure(Lattice.cubic(20.0), ["O", "O"], [[0, 0, 0], [d, 0, 0]], coords_are_cartesian=True))
        for d in (c - 1e-4, c + 1e-4)
    ]
    assert abs(e[0] - e[1]) < 1e-5
    assert float(polynomial_envelope(torch.tensor([c]), c)) == 0.0


def test_forces_by_autograd_sum_to_zero(model):
    s = bulk("NaCl", "rocksalt", a=5.5)
    s.rattle(0.1, seed=0)
    g = collate([s], model.config.cutoff, dtype=torch.float64)
    g.positions.requires_grad_(True)
    (model(g)[0] * len(s)).backward()
    np.testing.assert_allclose(g.positions.grad.sum(0).numpy(), 0, atol=1e-10)  # translation invariance


def test_width_and_depth_set_parameter_count():
    small, big = CrystalGNN(width=16, depth=1), CrystalGNN(width=32, depth=3)
    assert count_parameters(big) > 3 * count_parameters(small)


def test_save_load_roundtrip(tmp_path, model):
    X = composition_matrix(["Si", "NaCl"])
    norm = TargetNormalizer.fit(X, torch.tensor([0.0, -2.0]))
    path = save_model(tmp_path / "m.pt", model, norm)
    m2, n2, blob = load_model(path)
    assert m2.config == model.config and n2.scale == norm.scale
    s = bulk("Si", "diamond", a=5.43)
    assert _energy(m2.double(), s) == pytest.approx(_energy(model, s), abs=1e-12)
    cm = CompositionModel(width=8)
    p = save_model(tmp_path / "c.pt", cm)
    assert isinstance(load_model(p)[0], CompositionModel)

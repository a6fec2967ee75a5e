"""matdisco.graphs: periodic neighbour lists against pymatgen and ASE, invariances, batching, autograd."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st
from pymatgen.core import Lattice, Structure

from matdisco.graphs import batch_graphs, collate, neighbor_list, structure_to_graph


def _pairs(i, j, d, cutoff, tol=1e-6):
    "Multiset of (i, j, distance rounded) away from the cutoff's numerical edge."
    keep = np.abs(d - cutoff) > tol
    return sorted(zip(i[keep].tolist(), j[keep].tolist(), np.round(d[keep], 5).tolist()))


def _check_against_pymatgen(s: Structure, cutoff: float):
    i, j, img, d = neighbor_list(s.cart_coords, s.lattice.matrix, cutoff)
    pi, pj, _, pd_ = s.get_neighbor_list(cutoff, exclude_self=True)
    assert _pairs(i, j, d, cutoff) == _pairs(pi, pj, pd_, cutoff)
    vec = s.cart_coords[j] + img @ s.lattice.matrix - s.cart_coords[i]  # images reproduce the distances
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), d, atol=1e-9)


lattices = st.builds(
    lambda a, b, c, al, be, ga: (a, b, c, al, be, ga),
    st.floats(1.5, 12),
    st.floats(1.5, 12),
    st.floats(1.5, 12),
    st.floats(35, 145),
    st.floats(35, 145),
    st.floats(35, 145),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=lattices,
    n=st.integers(1, 6),
    cutoff=st.floats(0.5, 7.0),
    seed=st.integers(0, 2**31),
    spread=st.sampled_from([1.0, 3.0]),
)
def test_neighbor_list_matches_pymatgen_on_random_cells(lat, n, cutoff, seed, spread):
    with np.errstate(invalid="ignore"):
        L = Lattice.from_parameters(*lat)
    assume(np.isfinite(L.volume) and L.volume > 0.2 * lat[0] * lat[1] * lat[2])  # (nearly) degenerate: not a crystal
    event(f"cutoff/min(a,b,c) > 1: {cutoff > min(lat[:3])}")
    rng = np.random.default_rng(seed)
    frac = rng.uniform(-spread + 1, spread, size=(n, 3)) if spread > 1 else rng.uniform(0, 1, size=(n, 3))
    s = Structure(L, ["Si"] * n, frac, coords_are_cartesian=False)
    _check_against_pymatgen(s, cutoff)


@pytest.mark.parametrize(
    "params,cutoff",
    [
        ((1.2, 1.2, 1.2, 90, 90, 90), 6.0),  # cell much smaller than the cutoff
        ((3.0, 3.0, 30.0, 90, 90, 120), 8.0),  # slab-like, hexagonal
        ((5.0, 5.0, 5.0, 30, 30, 30), 6.0),  # very acute rhombohedral cell
        ((4.0, 9.0, 2.1, 100, 105, 115), 5.0),  # obtuse, skewed triclinic
        ((10.0, 2.0, 2.0, 90, 90, 90), 3.0),  # needle
    ],
)
def test_neighbor_list_on_adversarial_cells(params, cutoff):
    L = Lattice.from_parameters(*params)
    s = Structure(L, ["O", "O", "Mg"], [[0, 0, 0], [1.0, 1.0, 1.0 - 1e-12], [0.49, 0.51, -0.25]])
    _check_against_pymatgen(s, cutoff)


def test_agrees_with_ase():
    atoms = bulk("NaCl", "rocksalt", a=5.64).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=3)
    ai, aj, ad = ase_neighbor_list("ijd", atoms, 4.5)
    i, j, _, d = neighbor_list(atoms.get_positions(), atoms.cell[:], 4.5)
    assert _pairs(i, j, d, 4.5) == _pairs(ai, aj, ad, 4.5)


def test_coordination_shells_of_known_crystals():
    fcc = bulk("Cu", "fcc", a=3.61)  # 12 nearest neighbours, 6 second
    assert len(neighbor_list(fcc.positions, fcc.cell[:], 2.6)[0]) == 12
    assert len(neighbor_list(fcc.positions, fcc.cell[:], 3.7)[0]) == 18
    bcc = bulk("Fe", "bcc", a=2.87)  # 8 + 6
    assert len(neighbor_list(bcc.positions, bcc.cell[:], 2.6)[0]) == 8
    assert len(neighbor_list(bcc.positions, bcc.cell[:], 2.95)[0]) == 14


def test_distances_invariant_under_rotation_and_translation():
    s = Structure(
        Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 110),
        ["Li", "O", "O"],
        [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.4, 0.7, 0.2]],
    )
    d0 = np.sort(neighbor_list(s.cart_coords, s.lattice.matrix, 5.0)[3])
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rot = s.lattice.matrix @ q.T
    d1 = np.sort(neighbor_list(s.cart_coords @ q.T + [3.3, -1.0, 7.7], rot, 5.0)[3])
    np.testing.assert_allclose(d0, d1, atol=1e-9)


def test_batching_offsets_and_autograd():
    structs = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.61)]
    singles = [structure_to_graph(s, 3.0) for s in structs]
    g = batch_graphs(singles)
    assert g.num_graphs == 3 and g.n_atoms.tolist() == [2, 2, 1]
    assert g.num_edges == sum(x.num_edges for x in singles)
    torch.testing.assert_close(
        torch.sort(g.edge_lengths).values, torch.sort(torch.cat([x.edge_lengths for x in singles])).values
    )
    assert (g.batch[g.edge_index[0]] == g.batch[g.edge_index[1]]).all()
    # edge lengths are differentiable in positions: a uniform translation leaves every length unchanged
    pos = g.positions.clone().requires_grad_(True)
    g2 = collate(structs, 3.0)
    g2.positions = pos
    g2.edge_lengths.sum().backward()
    per_graph = torch.zeros(3, 3).index_add_(0, g2.batch, pos.grad)
    torch.testing.assert_close(per_graph, torch.zeros(3, 3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="different cutoffs"):
        batch_graphs([structure_to_graph(structs[0], 3.0), structure_to_graph(structs[1], 4.0)])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lat=lattices, n=st.integers(1, 8), cutoff=st.floats(0.5, 7.0), seed=st.integers(0, 2**31))
def test_vesin_list_equals_the_numpy_list_pair_by_pair(lat, n, cutoff, seed):
    "The two implementations agree on every (i, j, image) pair, images included, away from the cutoff's edge."
    from matdisco.graphs import neighbor_list_numpy

    with np.errstate(invalid="ignore"):
        L = Lattice.from_parameters(*lat)
    assume(np.isfinite(L.volume) and L.volume > 0.2 * lat[0] * lat[1] * lat[2])
    pos = np.random.default_rng(seed).uniform(-0.5, 1.5, size=(n, 3)) @ L.matrix  # some atoms outside the cell

    def key(i, j, img, d):
        keep = np.abs(d - cutoff) > 1e-6
        return sorted(zip(i[keep].tolist(), j[keep].tolist(), map(tuple, img[keep].tolist())))

    assert key(*neighbor_list(pos, L.matrix, cutoff)) == key(*neighbor_list_numpy(pos, L.matrix, cutoff))

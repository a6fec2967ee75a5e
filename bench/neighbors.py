"""Neighbour-list throughput on the same structures, one run: matdisco.graphs.neighbor_list (vesin), the project's
earlier hand-written NumPy list (neighbor_list_numpy), pymatgen and ASE.

Prints JSON: pairs/s and structures/s per method, ratios against the named baseline (pymatgen's
Structure.get_neighbor_list, Cython), and whether all methods found the same pairs (counted away from the cutoff's
numerical edge, where vesin keeps d < r_c and the others d <= r_c).
Usage: python bench/neighbors.py [--n 300] [--cutoff 5.0] [--seed 0] [--repeat 3]
"""

import argparse
import json
import platform
import time

import numpy as np
from ase.neighborlist import neighbor_list as ase_nl
from pymatgen.io.ase import AseAtomsAdaptor

from matdisco.data import load_structures, read_index, split_random, subsample
from matdisco.graphs import neighbor_list, neighbor_list_numpy


def _n(d, cutoff, tol=1e-6):
    "Pairs away from the cutoff's numerical edge."
    return int(np.sum(np.abs(np.asarray(d) - cutoff) > tol))


def _time(fn, structures, repeat):
    best, pairs = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        pairs = sum(fn(s) for s in structures)
        best = min(best, time.perf_counter() - t0)
    return best, pairs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = subsample(split_random(read_index())["test"], a.n, seed=a.seed)
    structs = list(load_structures(rows, progress=False).frame.structure)
    atoms = [AseAtomsAdaptor.get_atoms(s) for s in structs]
    c = a.cutoff
    methods = {
        "vesin (matdisco.graphs.neighbor_list)": (
            lambda s: _n(neighbor_list(s.cart_coords, s.lattice.matrix, c)[3], c),
            structs,
        ),
        "numpy (matdisco.graphs.neighbor_list_numpy, the old list)": (
            lambda s: _n(neighbor_list_numpy(s.cart_coords, s.lattice.matrix, c)[3], c),
            structs,
        ),
        "pymatgen": (lambda s: _n(s.get_neighbor_list(c, exclude_self=True)[3], c), structs),
        "ase": (lambda at: _n(ase_nl("d", at, c), c), atoms),
    }
    res = {}
    for name, (fn, items) in methods.items():
        fn(items[0])  # warm-up
        t, pairs = _time(fn, items, a.repeat)
        res[name] = {
            "seconds": round(t, 4),
            "pairs": int(pairs),
            "pairs_per_s": round(pairs / t),
            "structures_per_s": round(len(items) / t, 1),
        }
    base = res["pymatgen"]["pairs_per_s"]
    for r in res.values():
        r["ratio_vs_pymatgen"] = round(r["pairs_per_s"] / base, 3)
    print(
        json.dumps(
            {
                "benchmark": "neighbor_list",
                "baseline": "pymatgen.Structure.get_neighbor_list",
                "structures": len(structs),
                "mean_sites": float(np.mean([len(s) for s in structs])),
                "cutoff_A": c,
                "repeat_best_of": a.repeat,
                "machine": platform.platform(),
                "same_pair_counts": len({r["pairs"] for r in res.values()}) == 1,
                "results": res,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

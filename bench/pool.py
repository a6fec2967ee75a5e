"""Candidate pools at GNoME's proportions: generation rate from parents across the whole reference, and the cost of
dedup (`is_unique`) and novelty (`NoveltyChecker` against every mp2018_formation crystal) as the pool grows.

Parents: hull-stable crystals of mp2018_formation (≤ 20 sites, own DFT hull), from every chemistry. Each gives up to
`--per-parent` ionic substitutions (novelty re-weighted) and SAPS candidates. The pool's first n candidates are then
deduplicated and checked for novelty for n in `--sizes`; the fitted exponent k of t ∝ n^k says how the cost grows
(1: linear; n log n reads as ~1.1 over a decade; 2: pairwise). Baseline: the same pool checked by the naive pairwise
dedup, on the smallest size only (it is quadratic).
Prints JSON. Usage: python bench/pool.py [--parents 400] [--per-parent 40] [--sizes 1000 3000 10000 30000]
"""

import argparse
import json
import platform
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parents", type=int, default=400)
    ap.add_argument("--per-parent", type=int, default=40)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--naive-n", type=int, default=1000, help="pool size for the pairwise baseline (quadratic)")
    a = ap.parse_args()
    from matdisco.candidates import (
        NoveltyChecker,
        SkipLog,
        ionic_substitutions,
        is_unique,
        likely_replacements,
        naive_unique,
        saps_candidates,
    )
    from matdisco.data import load_structures, read_index
    from matdisco.hull import ReferenceHull
    from matdisco.reference import known_reduced_formulas

    idx = read_index()
    use = idx[~idx.is_outlier & idx.chemsys.notna()]
    eh = ReferenceHull.from_frame(use).e_above_hull_many(use.formula, use.formation_energy_per_atom)
    stable = use[(eh <= 1e-6) & (use.n_sites <= 20) & (use.n_elements >= 2)]
    rows = np.random.default_rng(a.seed).choice(
        stable.row_index.to_numpy(), size=min(a.parents, len(stable)), replace=False
    )
    t0 = time.perf_counter()
    reference = load_structures(use.row_index, progress=False).frame
    t_load = time.perf_counter() - t0
    parents = reference.set_index("row_index").loc[np.sort(rows)].reset_index()
    known = known_reduced_formulas()
    skips = SkipLog()
    t0 = time.perf_counter()
    subs = []
    for r in parents.itertuples():
        subs += ionic_substitutions(
            r.structure,
            parent_id=r.material_id,
            reference_formulas=known,
            novelty_weight=10.0,
            max_candidates=a.per_parent,
            skips=skips,
        )
    t_subs = time.perf_counter() - t0
    t0 = time.perf_counter()
    saps = []
    for r in parents.itertuples():
        repl = likely_replacements(r.structure, top=2)
        if repl:
            saps += saps_candidates(
                r.structure, repl, parent_id=r.material_id, max_per_prototype=a.per_parent, skips=skips
            )
    t_saps = time.perf_counter() - t0
    pool = [c.structure for c in subs + saps]
    order = np.random.default_rng(a.seed).permutation(len(pool))
    pool = [pool[k] for k in order]
    t0 = time.perf_counter()
    checker = NoveltyChecker(reference.structure)
    t_index = time.perf_counter() - t0
    scaling = []
    for n in [s for s in a.sizes if s <= len(pool)] or [len(pool)]:
        sub = pool[:n]
        t0 = time.perf_counter()
        uniq = is_unique(sub)
        t_u = time.perf_counter() - t0
        t0 = time.perf_counter()
        novel = checker.novel_mask(sub)
        t_n = time.perf_counter() - t0
        scaling.append(
            {
                "n": n,
                "dedup_s": round(t_u, 3),
                "novelty_s": round(t_n, 3),
                "unique": int(uniq.sum()),
                "novel": int(novel.sum()),
                "unique_and_novel": int((uniq & novel).sum()),
                "largest_formula_group": int(
                    max(np.unique([s.composition.reduced_formula for s in sub], return_counts=True)[1])
                ),
            }
        )

    def fit(col):
        return (
            round(
                float(
                    np.polyfit(np.log([d["n"] for d in scaling]), np.log([max(d[col], 1e-6) for d in scaling]), 1)[0]
                ),
                2,
            )
            if len(scaling) > 1
            else None
        )

    n0 = a.naive_n
    t0 = time.perf_counter()
    naive = naive_unique(pool[:n0])
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    grouped = is_unique(pool[:n0])
    t_grouped = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "benchmark": "pool",
                "baseline": f"naive pairwise dedup of the first {n0}",
                "machine": platform.platform(),
                "parents": len(parents),
                "reference_crystals": len(reference),
                "reference_load_s": round(t_load, 1),
                "generation": {
                    "substitution": {
                        "candidates": len(subs),
                        "seconds": round(t_subs, 1),
                        "per_s": round(len(subs) / t_subs, 1),
                    },
                    "saps": {
                        "candidates": len(saps),
                        "seconds": round(t_saps, 1),
                        "per_s": round(len(saps) / t_saps, 1),
                    },
                },
                "novelty_index_s": round(t_index, 2),
                "scaling": scaling,
                "fitted_exponent": {"dedup": fit("dedup_s"), "novelty": fit("novelty_s")},
                "naive_pairwise": {
                    "n": n0,
                    "seconds": round(t_naive, 2),
                    "grouped_seconds": round(t_grouped, 2),
                    "speedup_of_grouped": round(t_naive / max(t_grouped, 1e-6), 1),
                    "same_result": bool(((naive == np.arange(n0)) == grouped).all()),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

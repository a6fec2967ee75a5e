"""Candidate generation throughput per generator, and dedup time vs n: grouped (ours) vs naive pairwise, one run.

Prints JSON: candidates/s for ionic substitution, SAPS and random search on hull-stable mp2018_formation parents;
the substitution model's predictions per species set with pymatgen's `list_prediction` (baseline) and matdisco's
`substitution_predictions`, and whether they are identical;
dedup seconds for n candidates (a pool with known duplicates: translated copies and supercells) with matdisco's
grouped `unique_groups` and the naive pairwise loop (baseline), and the fitted scaling exponents t ∝ n^k.
Usage: python bench/candidates.py [--parents 20] [--sizes 100 200 400 800]
"""

import argparse
import json
import platform
import time

import numpy as np

from matdisco.candidates import (
    SkipLog,
    _predictor,
    _substitution_tables,
    ionic_substitutions,
    oxidation_species,
    substitution_predictions,
    likely_replacements,
    naive_unique,
    random_structures,
    saps_candidates,
    unique_groups,
)
from matdisco.data import load_structures, read_index
from matdisco.hull import e_above_own_hull


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parents", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400, 800])
    a = ap.parse_args()
    index = read_index()
    usable = index[~index.is_outlier]
    eh = e_above_own_hull(usable, n_sample=10 * a.parents, seed=a.seed)
    parents = load_structures(usable.loc[eh.index[eh <= 1e-6]].row_index.to_numpy()[: a.parents], progress=False).frame
    rates, pool = {}, []
    t0 = time.perf_counter()
    _substitution_tables()
    model_load_s = time.perf_counter() - t0
    species_sets = []
    for r in parents.itertuples():
        ox = oxidation_species(r.structure)
        if ox is not None and r.structure.is_ordered:
            species_sets.append(sorted(set(ox), key=str))

    def plain(preds):
        return [(p["probability"], {str(k): str(v) for k, v in p["substitutions"].items()}) for p in preds]

    t_theirs = t_ours = 0.0
    same = True
    n_sets = 0
    for sp in species_sets:
        try:
            t0 = time.perf_counter()
            theirs = _predictor(1e-3).list_prediction(sp, to_this_composition=False)
            t_theirs += time.perf_counter() - t0
        except ValueError:
            continue
        t0 = time.perf_counter()
        ours = substitution_predictions(sp, 1e-3)
        t_ours += time.perf_counter() - t0
        same &= plain(theirs) == plain(ours)
        n_sets += 1
    substitution_model = {
        "species_sets": n_sets,
        "pymatgen_list_prediction_s": round(t_theirs, 3),
        "matdisco_substitution_predictions_s": round(t_ours, 4),
        "speedup": round(t_theirs / t_ours, 1),
        "identical": bool(same),
        "one_off_model_load_s": round(model_load_s, 2),
    }
    t0 = time.perf_counter()
    subs = []
    for r in parents.itertuples():
        subs += ionic_substitutions(r.structure, parent_id=r.material_id, max_candidates=20, skips=SkipLog())
    rates["substitution"] = {"candidates": len(subs), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    saps = []
    for r in parents.itertuples():
        saps += saps_candidates(
            r.structure, likely_replacements(r.structure), parent_id=r.material_id, max_per_prototype=20
        )
    rates["saps"] = {"candidates": len(saps), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    rnd = []
    for f in ["LiMnO2", "Li2MnO3", "NaFePO4", "MgAl2O4", "KBiS2"]:
        rnd += random_structures(f, 4, seed=a.seed)
    rates["random_search"] = {"candidates": len(rnd), "seconds": time.perf_counter() - t0}
    for r in rates.values():
        r["candidates_per_s"] = round(r["candidates"] / r["seconds"], 2)
        r["seconds"] = round(r["seconds"], 2)
    base = [c.structure for c in subs + saps + rnd]
    rng = np.random.default_rng(a.seed)

    def make_pool(n):  # 70 % distinct crystals, 30 % re-expressed duplicates of them
        distinct = [base[k] for k in rng.choice(len(base), size=min(len(base), int(0.7 * n)), replace=False)]
        dups = []
        for k in rng.choice(len(distinct), size=n - len(distinct)):
            s = distinct[k].copy()
            s.translate_sites(range(len(s)), rng.uniform(0, 1, 3))
            dups.append(s)
        return [*distinct, *dups]

    dedup = []
    for n in a.sizes:
        pool = make_pool(n)
        t0 = time.perf_counter()
        ours = unique_groups(pool)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive = naive_unique(pool)
        t_naive = time.perf_counter() - t0
        dedup.append(
            {
                "n": len(pool),
                "ours_s": round(t_ours, 3),
                "naive_s": round(t_naive, 3),
                "speedup": round(t_naive / t_ours, 2),
                "same_result": bool((ours == naive).all()),
                "unique_grouped": int((ours == np.arange(len(pool))).sum()),
                "unique_pairwise": int((naive == np.arange(len(pool))).sum()),
            }
        )

    def fit(col):
        return float(np.polyfit(np.log([d["n"] for d in dedup]), np.log([d[col] for d in dedup]), 1)[0])

    print(
        json.dumps(
            {
                "benchmark": "candidates",
                "baseline": "naive pairwise StructureMatcher dedup",
                "parents": len(parents),
                "machine": platform.platform(),
                "substitution_model": substitution_model,
                "generation": rates,
                "dedup": dedup,
                "scaling_exponent": {"ours": round(fit("ours_s"), 2), "naive": round(fit("naive_s"), 2)},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

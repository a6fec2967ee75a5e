"""Oracle relaxation throughput with 1 vs 2 Dask workers (LocalCluster, one torch thread each), same structures.

Prints JSON: relaxations/s for each worker count (cluster start-up and CHGNet loading excluded by a warm-up task per
worker), and the speed-up of 2 workers over 1 (baseline). Structures: rattled small crystals from mp2018_formation.
Usage: python bench/oracle.py [--n 12] [--max-steps 50]
"""

import argparse
import json
import platform
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--max-steps", type=int, default=50)
    a = ap.parse_args()
    from dask.distributed import Client
    from matdisco.cluster import local_cluster
    from matdisco.data import load_structures, read_index, split_random, subsample
    from matdisco.oracle import OracleStore, make_calculator, run_oracle_batch

    idx = read_index().set_index("row_index")
    test = split_random(read_index())["test"]
    small = [r for r in test if idx.n_sites[r] <= 8]
    structs = list(load_structures(subsample(np.array(small), a.n, seed=0), progress=False).frame.structure)
    for k, s in enumerate(structs):
        s.perturb(0.05, min_distance=0.0)
    res = {}
    for workers in (1, 2):
        cluster = local_cluster(workers)
        client = Client(cluster)
        client.run(lambda: make_calculator("chgnet-0.3.0") and None)  # warm-up: load CHGNet in every worker
        store = OracleStore(tempfile.mkdtemp() + "/o.sqlite")
        t0 = time.perf_counter()
        rows = run_oracle_batch(structs, store, fmax=0.05, max_steps=a.max_steps, client=client, progress=False)
        dt = time.perf_counter() - t0
        client.close()
        cluster.close()
        res[f"{workers}_workers"] = {
            "relaxations": len(structs),
            "seconds": round(dt, 2),
            "relaxations_per_s": round(len(structs) / dt, 3),
            "ok": int(rows.ok.sum()),
            "mean_steps": float(rows.n_steps.mean()),
        }
    print(
        json.dumps(
            {
                "benchmark": "oracle_throughput",
                "oracle": "chgnet-0.3.0",
                "baseline": "1 Dask worker",
                "machine": platform.platform(),
                "max_steps": a.max_steps,
                "results": res,
                "speedup_2_vs_1": round(
                    res["2_workers"]["relaxations_per_s"] / res["1_workers"]["relaxations_per_s"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Screening throughput: the GNN filter (an ensemble, graph construction included) vs CHGNet single points, one run.

The filter is what GNoME runs over the whole candidate pool; CHGNet single points are the cheapest oracle call.
Both run on the same mp2018_formation test crystals and on the same Dask `LocalCluster` size (one torch thread per
worker). The ensemble is trained for one epoch first (speed does not depend on how well it is trained).
Prints JSON: structures/min per method, the ratio of the filter to CHGNet (the named baseline), and whether the
Dask result equals the single-process one.
Usage: python bench/screening.py [--n 4000] [--n-chgnet 600] [--workers 2] [--members 2] [--width 32] [--depth 2]
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--n-chgnet", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--volume-scales", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from matdisco.data import load_structures, read_index, split_random, subsample
    from matdisco.models import CrystalGNN, GNNConfig
    from matdisco.oracle import OracleStore, single_points
    from matdisco.train import GraphDataset, TrainConfig, screen, train_ensemble

    idx = read_index()
    sp = split_random(idx)
    structs = list(load_structures(subsample(sp["test"], a.n, seed=a.seed), progress=False).frame.structure)
    tr = load_structures(subsample(sp["train"], 300, seed=a.seed), progress=False).frame
    tmp = Path(tempfile.mkdtemp(prefix="bench-screening-"))
    ds = GraphDataset.from_frame(tr)
    ens = train_ensemble(
        lambda: CrystalGNN(config=GNNConfig(width=a.width, depth=a.depth)),
        ds.subset(slice(50, None)),
        ds.subset(slice(0, 50)),
        n_members=a.members,
        config=TrainConfig(epochs=1, seed=a.seed),
        run_dir=tmp / "models",
        progress=False,
    )
    res = {}
    t = time.perf_counter()
    GraphDataset.from_structures(structs[:1000])
    dt = time.perf_counter() - t
    res["graph construction only, 1 process"] = {"structures": 1000, "structures_per_min": round(1000 / dt * 60)}
    n1 = min(1000, len(structs))
    t = time.perf_counter()
    m1, _ = screen(ens, structs[:n1], volume_scales=a.volume_scales)
    dt = time.perf_counter() - t
    res["filter, 1 process"] = {"structures": n1, "structures_per_min": round(n1 / dt * 60)}
    from matdisco.cluster import dask_client

    with dask_client("local", n_workers=a.workers) as client:
        screen(
            ens, structs[: a.workers * 64], volume_scales=a.volume_scales, client=client, chunk_size=64
        )  # workers load the ensemble
        t = time.perf_counter()
        m, _ = screen(ens, structs, volume_scales=a.volume_scales, client=client)
        dt = time.perf_counter() - t
        res[f"filter, Dask {a.workers} workers"] = {
            "structures": len(structs),
            "structures_per_min": round(len(structs) / dt * 60),
        }
        single_points(
            structs[: a.workers * 16], OracleStore(tmp / "warm.sqlite"), "chgnet-0.3.0", client=client, chunk_size=16
        )
        nc = min(a.n_chgnet, len(structs))
        t = time.perf_counter()
        single_points(structs[:nc], OracleStore(tmp / "sp.sqlite"), "chgnet-0.3.0", client=client, chunk_size=64)
        dt = time.perf_counter() - t
        res[f"CHGNet 0.3.0 single points, Dask {a.workers} workers"] = {
            "structures": nc,
            "structures_per_min": round(nc / dt * 60),
        }
    base = res[f"CHGNet 0.3.0 single points, Dask {a.workers} workers"]["structures_per_min"]
    for r in res.values():
        r["ratio_vs_chgnet"] = round(r["structures_per_min"] / base, 2)
    print(
        json.dumps(
            {
                "benchmark": "screening",
                "baseline": f"CHGNet 0.3.0 single points, Dask {a.workers} workers",
                "ensemble": {
                    "members": a.members,
                    "width": a.width,
                    "depth": a.depth,
                    "volume_scales": a.volume_scales,
                },
                "mean_sites": float(np.mean([len(s) for s in structs])),
                "machine": platform.platform(),
                "dask_equals_single_process": bool(np.allclose(m[:n1], m1, atol=1e-5)),
                "results": res,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

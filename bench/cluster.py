"""GNN training throughput inside Dask workers: dask's default LocalCluster vs `matdisco.cluster.local_cluster`.

`distributed` sets MALLOC_TRIM_THRESHOLD_=65536 in its workers' environment before spawning them; that switches off
glibc's dynamic mmap threshold, and torch then maps and page-faults every large tensor afresh. This measures the same
training epochs (same crystals, same model, one torch thread) in a plain subprocess (the baseline), in a worker of a
default `LocalCluster`, and in a worker of ours, one after the other, and prints JSON with the ratios to the baseline.
Usage: python bench/cluster.py [--n 300] [--width 64] [--depth 3]
"""

import argparse
import json
import multiprocessing as mp
import platform
import time


def train_throughput(n: int, width: int, depth: int) -> dict:
    "Structures/s over two training epochs after one warm-up epoch (mp2018_formation training crystals)."
    import os
    import torch

    torch.set_num_threads(1)
    from matdisco.data import load_structures, read_index, split_random, subsample
    from matdisco.models import CrystalGNN, TargetNormalizer
    from matdisco.train import GraphDataset, atom_budget_batches, batch_graphs

    frame = load_structures(subsample(split_random(read_index())["train"], n, seed=0), progress=False).frame
    ds = GraphDataset.from_structures(list(frame.structure), frame.formation_energy_per_atom.to_numpy(), cutoff=5.0)
    torch.manual_seed(0)
    model = CrystalGNN(width=width, depth=depth, cutoff=5.0)
    model.config.avg_num_neighbors = ds.mean_neighbors()
    yn = TargetNormalizer.fit(ds.fractions, ds.y).normalize(ds.y, ds.fractions)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def epoch():
        for idx in atom_budget_batches(ds.n_atoms, 2048):
            loss = torch.nn.functional.huber_loss(model(batch_graphs([ds.graphs[k] for k in idx])), yn[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    epoch()
    t0 = time.perf_counter()
    epoch()
    epoch()
    dt = (time.perf_counter() - t0) / 2
    return {"structures_per_s": round(n / dt, 1), "MALLOC_TRIM_THRESHOLD_": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def _in_subprocess(q, *args):
    q.put(train_throughput(*args))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    a = ap.parse_args()
    from dask.distributed import Client, LocalCluster
    from matdisco.cluster import local_cluster

    args = (a.n, a.width, a.depth)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_in_subprocess, args=(q, *args))
    p.start()
    plain = q.get()
    p.join()
    res = {"plain process (baseline)": plain}
    for name, make in (
        (
            "dask default LocalCluster worker",
            lambda: LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None),
        ),
        ("matdisco.cluster.local_cluster worker", lambda: local_cluster(1)),
    ):
        cluster = make()
        client = Client(cluster)
        try:
            res[name] = client.submit(train_throughput, *args, pure=False).result()
        finally:
            client.close()
            cluster.close()
    base = plain["structures_per_s"]
    for r in res.values():
        r["ratio_to_baseline"] = round(r["structures_per_s"] / base, 2)
    print(
        json.dumps(
            {
                "benchmark": "gnn_training_in_dask_workers",
                "baseline": "plain process",
                "n_structures": a.n,
                "width": a.width,
                "depth": a.depth,
                "machine": platform.platform(),
                "results": res,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

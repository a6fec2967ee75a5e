"""Data-parallel training on CPU cores: one process (baseline) vs torch intra-op threads vs DDP ranks.

Same mp2018_formation training crystals, same model and TrainConfig (2,048 atoms per optimiser step in total), two
epochs each through `matdisco.train.fit` / `fit_data_parallel`; reports training structures/s of the second epoch
(validation included, as in a real run) and the ratio to one single-threaded process.
Usage: python bench/ddp.py [--n 3000] [--ranks 2] [--width 64] [--depth 3]
"""

import argparse
import json
import multiprocessing as mp
import platform
import tempfile


def _data(n):
    from matdisco.energy_benchmark import split_frames
    from matdisco.train import GraphDataset

    tr, va, _ = split_frames(n_train=n, n_val=max(100, n // 10), n_test=10, seed=0)
    return GraphDataset.from_frame(tr), GraphDataset.from_frame(va)


def run(kind, n, ranks, width, depth, q):
    import torch
    from matdisco.models import CrystalGNN
    from matdisco.train import TrainConfig, fit, fit_data_parallel

    torch.set_num_threads(ranks if kind == "threads" else 1)
    train, val = _data(n)
    cfg = TrainConfig(epochs=2, warmup_epochs=1, atoms_per_batch=2048)

    def make():
        return CrystalGNN(width=width, depth=depth)

    with tempfile.TemporaryDirectory() as d:
        if kind == "ddp":
            _, hist = fit_data_parallel(make, train, val, processes=ranks, config=cfg, run_dir=d, progress=False)
        else:
            torch.manual_seed(0)
            hist = fit(make(), train, val, config=cfg, run_dir=d, progress=False)
    q.put(
        {
            "epoch_s": round(float(hist.epoch_s.iloc[-1]), 2),
            "structures_per_s": round(n / float(hist.epoch_s.iloc[-1]), 1),
        }
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    res = {}
    for name, kind in (
        ("1 process, 1 thread (baseline)", "one"),
        (f"1 process, {a.ranks} threads", "threads"),
        (f"{a.ranks} DDP ranks (gloo), 1 thread each", "ddp"),
    ):
        q = ctx.Queue()
        p = ctx.Process(target=run, args=(kind, a.n, a.ranks, a.width, a.depth, q))
        p.start()
        res[name] = q.get()
        p.join()
    base = res["1 process, 1 thread (baseline)"]["structures_per_s"]
    for r in res.values():
        r["ratio_to_baseline"] = round(r["structures_per_s"] / base, 2)
    print(
        json.dumps(
            {
                "benchmark": "cpu_data_parallel_training",
                "baseline": "1 process, 1 thread",
                "n_train": a.n,
                "width": a.width,
                "depth": a.depth,
                "atoms_per_step": 2048,
                "machine": platform.platform(),
                "results": res,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

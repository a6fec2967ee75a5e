"""GNN throughput vs CHGNet single points, on the same mp2018_formation test crystals, in one run.

Each measurement runs in its own process (one torch thread on CPU) and reports its peak memory.
Prints JSON: structures/s for our GNN training, our inference *including graph construction*, and CHGNet 0.3.0
single-point energies (its own graph construction included), with the ratio of our inference to CHGNet's
(the baseline). Usage: python bench/gnn.py [--n 200] [--width 64] [--depth 3] [--device cpu|cuda]
"""

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time


def _peak_mb(device):
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(device):
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    from matdisco.data import load_structures, read_index, split_random, subsample

    return torch, load_structures, read_index, split_random, subsample


def _structures(n, seed=0):
    from matdisco.data import load_structures, read_index, split_random, subsample

    rows = subsample(split_random(read_index())["test"], n, seed=seed)
    return load_structures(rows, progress=False).frame


def measure(kind, n, width, depth, device, q):
    torch = _setup(device)[0]
    frame = _structures(n)
    structs, y = list(frame.structure), frame.formation_energy_per_atom.to_numpy()
    from matdisco.models import CrystalGNN, TargetNormalizer, count_parameters
    from matdisco.train import GraphDataset, atom_budget_batches, batch_graphs, predict

    out = {}
    if kind == "gnn_train":
        ds = GraphDataset.from_structures(structs, y, cutoff=5.0)
        torch.manual_seed(0)
        model = CrystalGNN(width=width, depth=depth, cutoff=5.0).to(device)
        model.config.avg_num_neighbors = ds.mean_neighbors()
        norm = TargetNormalizer.fit(ds.fractions, ds.y).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        yn = norm.normalize(ds.y.to(device), ds.fractions.to(device))

        def epoch():
            for idx in atom_budget_batches(ds.n_atoms, 2048):
                loss = torch.nn.functional.huber_loss(
                    model(batch_graphs([ds.graphs[k] for k in idx]).to(device)), yn[idx]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            if device == "cuda":
                torch.cuda.synchronize()

        epoch()  # warm-up
        t0 = time.perf_counter()
        epoch()
        epoch()
        dt = (time.perf_counter() - t0) / 2
        out = {"structures_per_s": len(structs) / dt, "n_params": count_parameters(model)}
    elif kind == "gnn_infer":
        torch.manual_seed(0)
        model = CrystalGNN(width=width, depth=depth, cutoff=5.0).to(device).eval()
        from matdisco.models import composition_matrix

        norm = TargetNormalizer.fit(composition_matrix(structs), torch.tensor(y, dtype=torch.float32))
        predict(model, norm, GraphDataset.from_structures(structs[:10], cutoff=5.0), device=torch.device(device))
        t0 = time.perf_counter()
        ds = GraphDataset.from_structures(structs, cutoff=5.0)  # graph construction is part of the cost
        predict(model, norm, ds, device=torch.device(device))
        dt = time.perf_counter() - t0
        out = {"structures_per_s": len(structs) / dt}
    elif kind == "chgnet":
        from matdisco.oracle import chgnet_energies

        chgnet_energies(structs[:4])
        t0 = time.perf_counter()
        chgnet_energies(structs, batch_size=16)
        dt = time.perf_counter() - t0
        out = {"structures_per_s": len(structs) / dt}
    out["peak_memory_MB"] = _peak_mb(device)
    q.put(out)


def run(kind, *a):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=measure, args=(kind, *a, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--device", default=None)
    a = ap.parse_args()
    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    res = {k: run(k, a.n, a.width, a.depth, device) for k in ("gnn_train", "gnn_infer", "chgnet")}
    for k in res:
        res[k] = {kk: round(v, 2) if isinstance(v, float) else v for kk, v in res[k].items()}
    print(
        json.dumps(
            {
                "benchmark": "gnn_throughput",
                "baseline": "CHGNet 0.3.0 predict_structure (single points)",
                "device": device,
                "threads": 1 if device == "cpu" else None,
                "structures": a.n,
                "gnn": {"width": a.width, "depth": a.depth, "cutoff_A": 5.0},
                "machine": platform.platform(),
                "results": res,
                "ratio_gnn_inference_vs_chgnet": round(
                    res["gnn_infer"]["structures_per_s"] / res["chgnet"]["structures_per_s"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""MD speed: our potential (matdisco.mlip, default size) vs the oracle (CHGNet 0.3.0, baseline), same cells, one run.

NVT (Nose-Hoover chain) at 1,000 K, 2 fs, on antifluorite Li2O supercells of several sizes; steps/s after a warm-up.
Speed does not depend on the weights, so the potential is untrained unless --potential names a saved one.
With --processes K > 1, K copies of the largest cell run at once in K processes (one torch thread each; the
aggregate steps/s is what a screening batch of K structures gets, e.g. sharing one GPU).
Prints JSON (and writes it to --out): steps/s per calculator and cell size, and ours/oracle ratios.
Usage: python bench/md.py [--steps 100] [--repeats 1,1,2 2,2,2 3,3,2] [--device cpu|cuda] [--processes 1]
"""

import argparse
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor


def _calculator(name, potential, device):
    from matdisco.oracle import one_thread

    one_thread()
    if name == "oracle":
        from chgnet.model.dynamics import CHGNetCalculator
        from matdisco.oracle import load_chgnet

        return CHGNetCalculator(model=load_chgnet("0.3.0"), use_device=device)
    from matdisco.mlip import (
        PotentialConfig,
        fit_composition_model,
        load_potential,
        new_potential,
        potential_calculator,
    )

    if potential:
        model, _ = load_potential(potential)
    else:
        model = new_potential(PotentialConfig())
        fit_composition_model(model, [], prior={"Li": -1.909, "O": -4.947})
    return potential_calculator(model, device)


def _rate(name, potential, device, reps, steps, warmup=10):
    from ase import units
    from ase.build import bulk
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    import numpy as np

    atoms = bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(reps)
    atoms.calc = _calculator(name, potential, device)
    MaxwellBoltzmannDistribution(atoms, temperature_K=1000, rng=np.random.default_rng(0))
    dyn = NoseHooverChainNVT(atoms, timestep=2 * units.fs, temperature_K=1000, tdamp=200 * units.fs)
    dyn.run(warmup)
    t0 = time.perf_counter()
    dyn.run(steps)
    return len(atoms), steps / (time.perf_counter() - t0)


def _n_atoms(reps):
    from ase.build import bulk

    return len(bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(reps))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", nargs="+", default=["1,1,2", "2,2,2", "3,3,2"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--potential", default=None)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--process-cell", type=int, default=-1, help="index into --repeats of the cell the processes run")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    reps = [tuple(int(x) for x in r.split(",")) for r in a.repeats]
    res = {
        "baseline": "oracle (CHGNet 0.3.0)",
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "steps": a.steps,
        "cells": [],
    }
    for r in reps:
        row = {"repeat": r}
        for name in ("oracle", "ours"):
            n, rate = _rate(name, a.potential, device, r, a.steps)
            row.update(n_atoms=n, **{f"{name}_steps_per_s": rate})
        row["ratio_ours_vs_oracle"] = row["ours_steps_per_s"] / row["oracle_steps_per_s"]
        res["cells"].append(row)
        print(json.dumps(row), flush=True)
    if a.processes > 1:
        import multiprocessing as mp

        if device == "cuda":
            torch.cuda.empty_cache()
        with ProcessPoolExecutor(a.processes, mp_context=mp.get_context("spawn")) as ex:
            for name in ("oracle", "ours"):
                futs = [
                    ex.submit(_rate, name, a.potential, device, reps[a.process_cell], a.steps)
                    for _ in range(a.processes)
                ]
                rates = [f.result()[1] for f in futs]
                res[f"{name}_aggregate_steps_per_s_{a.processes}_processes"] = sum(rates)
                res[f"{name}_process_cell_atoms"] = _n_atoms(reps[a.process_cell])
        res["aggregate_ratio_ours_vs_oracle"] = (
            res[f"ours_aggregate_steps_per_s_{a.processes}_processes"]
            / res[f"oracle_aggregate_steps_per_s_{a.processes}_processes"]
        )
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()

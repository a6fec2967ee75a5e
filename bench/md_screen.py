"""Zero-shot MD screening of a `mlip` run's held-out Li compositions on a machine with more cores or a GPU.

`prepare` (where the run was made) writes the run's pretrained potential and every held-out Li-containing relaxed
structure into one folder; `run` (on the bigger machine) screens them with `matdisco.md.screen_conductors`, oracle vs
our potential, as Dask tasks (one per structure and calculator, one torch thread each, all sharing the GPU), and
writes md.csv, classification.json and the MD config there.
Usage:
  python bench/md_screen.py prepare runs/cpu-mlip/stages/mlip OUT_DIR [--max-atoms 64 --min-length 8]
  python bench/md_screen.py run OUT_DIR [--total-ps 8 --discard-ps 2 --workers 16 --n 8 --smoothed max]
"""

import argparse
import json
from pathlib import Path


def prepare(a):
    import shutil
    import pandas as pd
    from pymatgen.core import Structure
    from matdisco.md import md_supercell
    from matdisco.mlip import potential_path
    from matdisco.oracle import cache_dir, shared_store

    stage = Path(a.stage)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = json.loads((stage / "summary.json").read_text())
    key = summary.get("pretrained_key")
    if (
        key is None
    ):  # runs before pretrained_key was recorded: the learning curve's largest model, if it used every frame
        curve = pd.read_csv(stage / "learning_curve.csv").sort_values("n_frames")
        if curve.n_frames.iloc[-1] != summary["n_train"]:
            raise SystemExit("no pretrained_key in summary.json; rerun the stage")
        key = curve.key.iloc[-1]
    shutil.copy(potential_path(cache_dir() / "mlip", key), out / "potential.pt")
    frames = pd.read_csv(stage / "frames.csv")
    held = frames[(frames.split == "test") & frames.formula.str.contains(r"Li(?![a-z])")].drop_duplicates("source")
    store = shared_store("relaxations", summary["oracle"], fmax=0.05, max_steps=a.relax_max_steps)
    rows = store.get(summary["oracle"], held.source)
    structures = {}
    for sid, d in zip(held.source, rows.final_structure):
        s = Structure.from_dict(json.loads(d))
        if len(md_supercell(s, a.min_length)) <= a.max_atoms:
            structures[sid] = s.as_dict()
    (out / "structures.json").write_text(json.dumps(structures))
    (out / "source.json").write_text(
        json.dumps(
            {
                "stage": str(stage),
                "potential_key": key,
                "oracle": summary["oracle"],
                "min_length": a.min_length,
                "max_atoms": a.max_atoms,
            },
            indent=1,
        )
    )
    print(f"{len(structures)} held-out Li structures (of {len(held)}) with supercells <= {a.max_atoms} atoms -> {out}")


def run(a):
    from pymatgen.core import Structure
    from matdisco.md import MDConfig, md_classification, screen_conductors

    d = Path(a.folder)
    src = json.loads((d / "source.json").read_text())
    structures = {k: Structure.from_dict(v) for k, v in json.loads((d / "structures.json").read_text()).items()}
    structures = dict(sorted(structures.items(), key=lambda kv: len(kv[1]))[: a.n])
    cfg = MDConfig(
        total_ps=a.total_ps,
        discard_ps=a.discard_ps,
        sample_every=a.sample_every,
        min_length=src["min_length"],
        max_atoms=src["max_atoms"],
        smoothed=a.smoothed if a.smoothed != "false" else False,
    )
    out = Path(a.out or d)
    t = screen_conductors(
        structures,
        {"oracle": src["oracle"], "ours": str(d / "potential.pt")},
        cfg,
        out / "md",
        kinisi_errors=False,
        n_workers=a.workers,
        progress=True,
    )
    t.to_csv(out / "md.csv", index=False)
    cls = md_classification(t)
    speed = t.groupby("calculator").steps_per_s.median().to_dict() if "steps_per_s" in t else {}
    (out / "classification.json").write_text(
        json.dumps(
            {
                "md": {**cfg.__dict__},
                "n_structures": len(structures),
                "classification": cls,
                "median_steps_per_s": speed,
            },
            indent=1,
            default=float,
        )
    )
    print(t.drop(columns=[c for c in ("reason", "specie") if c in t]).to_string())
    print(json.dumps(cls, default=float))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("stage")
    p.add_argument("out")
    p.add_argument("--max-atoms", type=int, default=64)
    p.add_argument("--min-length", type=float, default=8.0)
    p.add_argument("--relax-max-steps", type=int, default=200)
    r = sub.add_parser("run")
    r.add_argument("folder")
    r.add_argument("--out", default=None)
    r.add_argument("--total-ps", type=float, default=8.0)
    r.add_argument("--discard-ps", type=float, default=2.0)
    r.add_argument("--sample-every", type=int, default=10)
    r.add_argument("--workers", type=int, default=16)
    r.add_argument("--n", type=int, default=8)
    r.add_argument("--smoothed", default="max")
    a = ap.parse_args()
    prepare(a) if a.cmd == "prepare" else run(a)


if __name__ == "__main__":
    main()

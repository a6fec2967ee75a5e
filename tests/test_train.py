"""matdisco.train on real mp2018_formation data: learning beats baselines; a killed run resumes to the same result."""

import json
import shutil
import numpy as np
import pandas as pd
import pytest
import torch

from matdisco.core import sha256_file
from matdisco.energy_benchmark import split_frames
from matdisco.metrics import mae
from matdisco.models import CompositionModel, CrystalGNN, TargetNormalizer, load_model, save_model
from matdisco.train import Ensemble, GraphDataset, TrainConfig, _Stop, fit, fit_data_parallel, predict, train_ensemble


@pytest.fixture(scope="module")
def small(mirror):
    torch.set_num_threads(1)
    tr, va, te = split_frames(n_train=700, n_val=120, n_test=200, seed=0)
    return {k: GraphDataset.from_frame(df, cutoff=4.5) for k, df in (("train", tr), ("val", va), ("test", te))}, (
        tr,
        va,
        te,
    )


def test_gnn_beats_mean_and_linear_baselines_on_held_out_data(small, tmp_path):
    ds, _ = small
    y = ds["test"].y.numpy()
    mean_mae = mae(y, np.full_like(y, float(ds["train"].y.mean())))
    linear_mae = mae(
        y, TargetNormalizer.fit(ds["train"].fractions, ds["train"].y).reference(ds["test"].fractions).numpy()
    )
    torch.manual_seed(0)
    model = CrystalGNN(width=48, depth=2, cutoff=4.5)
    hist = fit(
        model,
        ds["train"],
        ds["val"],
        config=TrainConfig(epochs=10, lr=3e-3, atoms_per_batch=1024),
        run_dir=tmp_path / "gnn",
        progress=False,
    )
    _, norm, _ = load_model(tmp_path / "gnn" / "best.pt")
    gnn_mae = mae(y, predict(model, norm, ds["test"]))
    assert gnn_mae < linear_mae < mean_mae, (gnn_mae, linear_mae, mean_mae)
    assert gnn_mae < 0.85 * linear_mae
    assert hist.val_mae.iloc[-1] < hist.val_mae.iloc[0]
    assert (tmp_path / "gnn" / "metrics.csv").exists() and (tmp_path / "gnn" / "done.json").exists()


def test_killed_training_resumes_to_the_same_result(small, tmp_path):
    ds, _ = small
    sub = ds["train"].subset(slice(0, 150))
    cfg = TrainConfig(epochs=4, lr=3e-3, atoms_per_batch=512, seed=3)
    torch.manual_seed(3)
    ref = CrystalGNN(width=16, depth=2, cutoff=4.5)
    h_ref = fit(ref, sub, ds["val"], config=cfg, run_dir=tmp_path / "ref", progress=False)
    torch.manual_seed(3)
    killed = CrystalGNN(width=16, depth=2, cutoff=4.5)
    with pytest.raises(_Stop):
        fit(killed, sub, ds["val"], config=cfg, run_dir=tmp_path / "run", progress=False, stop_after_epoch=1)
    torch.manual_seed(999)
    resumed = CrystalGNN(width=16, depth=2, cutoff=4.5)  # a fresh process: other init
    h_res = fit(resumed, sub, ds["val"], config=cfg, run_dir=tmp_path / "run", progress=False)
    assert len(h_res) == len(h_ref) == 4
    np.testing.assert_allclose(h_res.val_mae, h_ref.val_mae, rtol=0, atol=1e-7)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_data_parallel_training_learns_and_a_killed_run_resumes_to_the_same_result(small, tmp_path):
    """Two gloo ranks on CPU (DistributedDataParallel): validation MAE falls, rank 0 alone writes checkpoints,
    and a run killed after epoch 1 resumes (in fresh processes) to exactly the uninterrupted run's weights."""
    ds, _ = small
    sub = ds["train"].subset(slice(0, 160))
    cfg = TrainConfig(epochs=4, lr=3e-3, atoms_per_batch=1024, seed=5)

    def make():
        return CrystalGNN(width=16, depth=2, cutoff=4.5)

    ref, h_ref = fit_data_parallel(
        make, sub, ds["val"], processes=2, config=cfg, run_dir=tmp_path / "ref", progress=False
    )
    assert len(h_ref) == 4 and h_ref.val_mae.iloc[-1] < h_ref.val_mae.iloc[0]
    _, norm, _ = load_model(tmp_path / "ref" / "best.pt")  # the recorded val MAE is that of the whole val set
    best = int(h_ref.val_mae.idxmin())
    np.testing.assert_allclose(mae(ds["val"].y.numpy(), predict(ref, norm, ds["val"])), h_ref.val_mae[best], atol=1e-6)
    with pytest.raises(Exception, match="stopped after epoch 1"):
        fit_data_parallel(
            make, sub, ds["val"], processes=2, config=cfg, run_dir=tmp_path / "run", progress=False, stop_after_epoch=1
        )
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2
    res, h_res = fit_data_parallel(
        make, sub, ds["val"], processes=2, config=cfg, run_dir=tmp_path / "run", progress=False
    )
    np.testing.assert_allclose(h_res.val_mae, h_ref.val_mae, rtol=0, atol=1e-7)
    for a, b in zip(ref.state_dict().values(), res.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_ensemble_spread_and_tta(small, tmp_path):
    ds, (tr, va, te) = small
    sub = ds["train"].subset(slice(0, 200))
    cfg = TrainConfig(epochs=3, lr=3e-3, atoms_per_batch=1024)
    ens = train_ensemble(
        lambda: CrystalGNN(width=16, depth=1, cutoff=4.5),
        sub,
        ds["val"],
        n_members=2,
        config=cfg,
        run_dir=tmp_path / "ens",
        progress=False,
    )
    mean, std = ens.predict(ds["test"])
    assert mean.shape == std.shape == (len(ds["test"]),) and (std > 0).all()  # different seeds disagree
    done = (ens.dirs[0] / "done.json").stat().st_mtime_ns
    again = train_ensemble(
        lambda: CrystalGNN(width=16, depth=1, cutoff=4.5),
        sub,
        ds["val"],
        n_members=2,
        config=cfg,
        run_dir=tmp_path / "ens",
        progress=False,
    )
    assert again.dirs == ens.dirs and (ens.dirs[0] / "done.json").stat().st_mtime_ns == done  # same settings: reused
    # one parameter changed (learning rate), or other training data: new members are trained, the old ones kept
    other = train_ensemble(
        lambda: CrystalGNN(width=16, depth=1, cutoff=4.5),
        sub,
        ds["val"],
        n_members=2,
        config=TrainConfig(epochs=3, lr=1e-3, atoms_per_batch=1024),
        run_dir=tmp_path / "ens",
        progress=False,
    )
    assert other.dirs[0] != ens.dirs[0] and (other.dirs[0] / "done.json").exists()
    assert json.loads((other.dirs[0].parent / "ensemble.json").read_text())["train_config"]["lr"] == 1e-3
    assert (ens.dirs[0] / "done.json").stat().st_mtime_ns == done
    wider = train_ensemble(
        lambda: CrystalGNN(width=20, depth=1, cutoff=4.5),
        sub,
        ds["val"],
        n_members=2,
        config=cfg,
        run_dir=tmp_path / "ens",
        progress=False,
    )
    assert wider.dirs[0] not in (ens.dirs[0], other.dirs[0])
    assert (
        ds["train"].subset(slice(0, 199)).fingerprint()
        != sub.fingerprint()
        == ds["train"].subset(slice(0, 200)).fingerprint()
    )
    structs = list(te.structure.iloc[:20])
    m1, s1 = ens.predict_structures(structs, volume_scales=(1.0,))
    np.testing.assert_allclose(m1, mean[:20], atol=1e-5)  # scale 1.0 is the plain prediction
    m3, s3 = ens.predict_structures(structs, volume_scales=(0.9, 1.0, 1.1))
    assert not np.allclose(m3, m1)
    # screening in chunks on Dask workers (each loads the members from their folders) equals one process
    from matdisco.train import screen

    md, sd = screen(ens, structs, volume_scales=(0.9, 1.0, 1.1), scheduler="local", n_workers=2, chunk_size=7)
    np.testing.assert_allclose(md, m3, atol=1e-5)
    np.testing.assert_allclose(sd, s3, atol=1e-5)
    with pytest.raises(ValueError, match="member folders"):
        screen(Ensemble(ens.members), structs, scheduler="local")


def test_composition_model_learns(small, tmp_path):
    ds, _ = small
    torch.manual_seed(0)
    cm = CompositionModel(width=32)
    fit(cm, ds["train"], ds["val"], config=TrainConfig(epochs=30, lr=3e-3), run_dir=tmp_path / "c", progress=False)
    _, norm, _ = load_model(tmp_path / "c" / "best.pt")
    y = ds["test"].y.numpy()
    assert mae(y, predict(cm, norm, ds["test"])) < mae(y, np.full_like(y, float(ds["train"].y.mean())))


def test_nan_target_is_a_clear_error(small):
    _, (tr, _, _) = small
    bad = tr.iloc[:3].copy()
    bad.loc[bad.index[1], "formation_energy_per_atom"] = np.nan
    with pytest.raises(ValueError, match=r"non-finite targets at positions \[1\]"):
        GraphDataset.from_frame(bad)


def test_torchrun_launches_ddp_training_from_the_cli(mirror, tmp_path):
    """`torchrun --nproc_per_node 2 --no-python matdisco train`: two gloo ranks join from the environment,
    rank 0 writes the checkpoint and reports a test MAE below the mean predictor's on real data."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        [
            str(bin_dir / "torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            "--no-python",
            "matdisco",
            "train",
            "--out",
            str(tmp_path / "run"),
            "--n-train",
            "300",
            "--n-val",
            "60",
            "--n-test",
            "100",
            "--width",
            "16",
            "--depth",
            "2",
            "--epochs",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["world_size"] == 2 and res["epochs_run"] == 3 and (tmp_path / "run" / "best.pt").exists()
    tr, _, te = split_frames(n_train=300, n_val=60, n_test=100, seed=0)
    mean_mae = mae(te.formation_energy_per_atom.to_numpy(), np.full(len(te), tr.formation_energy_per_atom.mean()))
    assert res["test_mae"] < mean_mae


def _small_ensemble(train, val, run_dir, config, warm_from=None):
    "One small GNN member (width 16, depth 1) trained on `train`, optionally warm-started from `warm_from`."
    return train_ensemble(
        lambda: CrystalGNN(width=16, depth=1, cutoff=4.5),
        train,
        val,
        n_members=1,
        config=config,
        run_dir=run_dir,
        warm_from=warm_from,
        progress=False,
    )


def test_a_warm_start_keeps_the_pretrained_normaliser_and_neighbour_statistics(small, tmp_path):
    "Fine-tuning on a few new crystals must not refit what the pretrained model's outputs are scaled by."
    ds, _ = small
    cfg = TrainConfig(epochs=2, lr=3e-3, atoms_per_batch=1024)
    pre = _small_ensemble(ds["train"].subset(slice(0, 200)), ds["val"], tmp_path / "pre", cfg)
    few = ds["train"].subset(slice(600, 620))  # 20 other crystals
    assert few.mean_neighbors() != ds["train"].subset(slice(0, 200)).mean_neighbors()
    fine_tune = TrainConfig(epochs=1, lr=1e-4, atoms_per_batch=1024, warmup_epochs=1)
    ft = _small_ensemble(few, ds["val"], tmp_path / "ft", fine_tune, warm_from=pre.dirs)
    (m0, n0, _), (m1, n1, _) = load_model(pre.dirs[0] / "best.pt"), load_model(ft.dirs[0] / "best.pt")
    assert m1.config.avg_num_neighbors == m0.config.avg_num_neighbors
    torch.testing.assert_close(n1.weights, n0.weights)
    assert n1.scale == n0.scale
    # a fresh model trained on the same 20 crystals fits its own statistics
    fresh_config = TrainConfig(epochs=1, atoms_per_batch=1024, warmup_epochs=1)
    fresh = _small_ensemble(few, ds["val"], tmp_path / "fresh", fresh_config)
    assert load_model(fresh.dirs[0] / "best.pt")[0].config.avg_num_neighbors == pytest.approx(few.mean_neighbors())


def test_a_warm_start_is_keyed_by_its_weights_not_by_its_folder(small, tmp_path):
    "A moved or copied run folder reuses its warm-started members; other starting weights train new ones."
    ds, _ = small
    pre_config = TrainConfig(epochs=1, atoms_per_batch=1024)
    pre = _small_ensemble(ds["train"].subset(slice(0, 100)), ds["val"], tmp_path / "pre", pre_config)
    few = ds["train"].subset(slice(600, 620))
    fine_tune_config = TrainConfig(epochs=1, lr=1e-4, atoms_per_batch=1024, warmup_epochs=1)

    def fine_tune(warm_from):
        return _small_ensemble(few, ds["val"], tmp_path / "ft", fine_tune_config, warm_from=warm_from)

    first = fine_tune(pre.dirs)
    trained_at = (first.dirs[0] / "done.json").stat().st_mtime_ns
    moved = tmp_path / "elsewhere" / "member_0"
    shutil.copytree(pre.dirs[0], moved)
    again = fine_tune([moved])
    assert again.dirs == first.dirs  # the same starting weights: the same key, so the members are reused
    assert (again.dirs[0] / "done.json").stat().st_mtime_ns == trained_at  # not retrained
    model, normalizer, _ = load_model(moved / "best.pt")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_model(moved / "best.pt", model, normalizer)
    other = fine_tune([moved])
    assert other.dirs[0].parent != first.dirs[0].parent  # other starting weights: a new key
    assert json.loads((other.dirs[0].parent / "ensemble.json").read_text())["warm_start_weights"] == [
        sha256_file(moved / "best.pt")
    ]

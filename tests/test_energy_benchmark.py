"""matdisco.energy_benchmark end to end on a small real split: one GNN member trained over 2 DDP ranks, baselines,
CHGNet zero-shot rows, and the uncertainty that is judged when the ensemble has a single member."""

from pathlib import Path

import numpy as np

from matdisco.energy_benchmark import (
    parity_figure,
    run_energy_benchmark,
    split_frames,
    uncertainty_columns,
    uncertainty_figure,
)
from matdisco.models import GNNConfig
from matdisco.train import TrainConfig


def test_single_member_benchmark_judges_the_volume_tta_spread(mirror, tmp_path):
    tr, va, te = split_frames(n_train=300, n_val=60, n_test=80, seed=0)
    res = run_energy_benchmark(
        tr,
        va,
        te,
        run_dir=tmp_path / "models",
        gnn=GNNConfig(width=16, depth=2),
        train_config=TrainConfig(epochs=3, lr=3e-3, atoms_per_batch=1024),
        ensemble_size=1,
        tta_scales=(0.96, 1.0, 1.04),
        chgnet_n=4,
        progress=False,
        processes=2,
    )
    m = res["metrics"].set_index("model")
    assert m.loc["per-element linear", "MAE"] < m.loc["mean predictor", "MAE"]
    assert not any("CHGNet" in name for name in m.index)  # another level of theory: not in this table
    x = res["cross_level"].set_index("model")
    assert set(x.index) == {"CHGNet 0.3.0 zero-shot (4 random test crystals)", "GNN ensemble (same 4 crystals)"}
    assert "level gap" in x.loc["CHGNet 0.3.0 zero-shot (4 random test crystals)", "level"]
    chg = np.flatnonzero(np.isfinite(res["predictions"].chgnet.to_numpy()))
    assert len(chg) == 4 and chg.tolist() != [0, 1, 2, 3]  # a random subset, not the first rows
    assert (m.DAF <= m.DAF_max + 1e-12).all() and {"R2_e_form", "R2_e_hull"} <= set(m.columns)
    p = res["predictions"]
    assert (p.gnn_std == 0).all() and (p.gnn_tta_std > 0).all()  # one member: no ensemble spread, a TTA spread
    assert uncertainty_columns(p) == ("gnn_tta_mean", "gnn_tta_std", "volume-TTA std (one member)")
    assert res["summary"]["uncertainty"] == "volume-TTA std (one member)" and res["summary"]["processes"] == 2
    assert len(res["summary"]["gnn_train_s"]) == 1 and res["summary"]["gnn_train_s"][0] > 0  # the keyed member folder
    (member,) = res["summary"]["gnn_members"]  # named relative to the run folder, never by this machine's paths
    assert not Path(member).is_absolute() and (tmp_path / "models" / "gnn" / member / "best.pt").exists()
    assert np.isfinite(res["summary"]["spearman_abs_error_vs_uncertainty"])
    cal = res["calibration"]
    assert cal["n"].sum() == len(te) and (cal["std"] > 0).all() and cal["std"].is_monotonic_increasing
    fig = uncertainty_figure(p, cal)
    assert fig.axes[0].get_xlabel() == "volume-TTA std (one member) (eV/atom)"
    assert "nan" not in fig.axes[0].get_title()
    parity_figure(p)
    two = p.assign(gnn_std=np.linspace(0.01, 0.1, len(p)))  # with a real ensemble spread, that one is judged
    assert uncertainty_columns(two)[1] == "gnn_std"

"""matdisco.mlip: an energy-conserving potential trained with CHGNet's Trainer on oracle frames."""
import numpy as np
import pytest
from ase.build import bulk

from matdisco.mlip import (PotentialConfig, fit_composition_model, load_potential, new_potential, potential_calculator,
                           potential_errors, potential_path, train_potential)
from matdisco.mlip_data import SamplingConfig, build_frames, load_frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from matdisco.oracle import make_calculator
    d = tmp_path_factory.mktemp("frames")
    cfg = SamplingConfig(rattles_per_temperature=3, strains=3, md_steps=0)
    src = {"li2o": bulk("Li2O", "fluorite", a=4.61), "lif": bulk("LiF", "rocksalt", a=4.03),
           "nacl": bulk("NaCl", "rocksalt", a=5.69)}
    return load_frames(build_frames(src, d, cfg, calculator=make_calculator("chgnet-0.3.0"), progress=False))


def test_saved_potential_reproduces_its_predictions_and_is_keyed_by_its_data(frames, tmp_path):
    train = [f for f in frames if f.info["formula"] != "NaCl"]
    cfg = PotentialConfig(epochs=2, batch_size=4)
    model, hist, key = train_potential(train, train[:4], cfg, root=tmp_path)
    again, _ = load_potential(potential_path(tmp_path, key))
    a = train[0].copy(); a.calc = potential_calculator(model); b = train[0].copy(); b.calc = potential_calculator(again)
    assert np.isclose(a.get_potential_energy(), b.get_potential_energy(), atol=1e-5)
    assert np.allclose(a.get_forces(), b.get_forces(), atol=1e-5)
    assert len(hist) == 2 and set(hist.columns) >= {"train_e", "val_f"}


def test_fine_tuning_keeps_the_pretrained_references_and_fills_new_elements(frames, tmp_path):
    li = [f for f in frames if "Li" in f.info["formula"]]; na = [f for f in frames if f.info["formula"] == "NaCl"]
    pre, _, key = train_potential(li, li[:4], PotentialConfig(epochs=1, batch_size=4), root=tmp_path)
    w_pre = pre.composition_model.fc.weight.data.clone()
    ft, _, _ = train_potential(na, na, PotentialConfig(epochs=1, batch_size=4), init=pre, init_key=key, root=tmp_path)
    w_ft = ft.composition_model.fc.weight.data
    assert np.isclose(float(w_ft[0, 2]), float(w_pre[0, 2]))                       # Li: kept
    assert float(w_pre[0, 10]) == 0.0 and np.isclose(float(w_ft[0, 10]), -1.31, atol=0.05)   # Na: MP's reference


def test_an_energy_conserving_potential_gives_forces_of_its_energy(frames):
    model = new_potential(PotentialConfig(seed=3)); fit_composition_model(model, frames)
    a = frames[1].copy(); a.calc = potential_calculator(model)
    f = a.get_forces(); h = 1e-3; i, k = 0, 2
    p = a.copy(); p.calc = a.calc; p.positions[i, k] += h; ep = p.get_potential_energy()
    m = a.copy(); m.calc = a.calc; m.positions[i, k] -= h; em = m.get_potential_energy()
    assert np.isclose(-(ep - em) / (2 * h), f[i, k], atol=2e-2)
    # sum of forces vanishes (translation invariance)
    assert np.abs(f.sum(0)).max() < 1e-3
    e = potential_errors(model, frames[:3])
    assert set(e.columns) >= {"energy_error_meV_atom", "force_mae_meV_A", "stress_mae_GPa"}

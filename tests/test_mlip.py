"""matdisco.mlip: an energy-conserving potential trained with CHGNet's Trainer on oracle frames."""
import numpy as np
import pytest
from ase.build import bulk

from matdisco.mlip import (PotentialConfig, elemental_references, fit_composition_model, frames_to_dataset,
                           load_potential, new_potential, potential_calculator, potential_errors, potential_path,
                           train_potential)
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


def test_every_element_has_its_prior_reference_whatever_the_training_frames(frames, tmp_path):
    "An element absent from the training frames gets MP's reference, never 0; fine-tuning keeps the pretrained ones."
    from matdisco.oracle import mp_reference_energies
    prior = mp_reference_energies()
    li = [f for f in frames if "Li" in f.info["formula"]]
    na = [f for f in frames if f.info["formula"] == "NaCl"]
    pre, _, key = train_potential(li, li[:4], PotentialConfig(epochs=1, batch_size=4), root=tmp_path)
    w_pre = pre.composition_model.fc.weight.data.clone().numpy().ravel()
    assert np.all(w_pre != 0.0)
    assert np.isclose(w_pre[10], prior["Na"], atol=1e-4) and np.isclose(w_pre[16], prior["Cl"], atol=1e-4)
    assert np.isclose(w_pre[2], prior["Li"], atol=1e-4)
    ft, _, _ = train_potential(na, na, PotentialConfig(epochs=1, batch_size=4), init=pre, init_key=key, root=tmp_path)
    assert np.allclose(ft.composition_model.fc.weight.data.numpy().ravel(), w_pre)


def test_elements_without_a_prior_reference_are_refused(frames):
    with pytest.raises(ValueError, match="no prior elemental reference energy for \\['O'\\]"):
        elemental_references(frames[:1], prior={"Li": -1.9})


def test_the_oracle_reproduces_its_own_labels_through_the_training_path(frames):
    """Zero epochs: the oracle's own network, fed the training dataset's graphs, returns the dataset's energy, force
    and stress targets to round-off. Stress targets in the wrong convention (sign, kBar vs GPa) fail here."""
    from chgnet.model import CHGNet
    oracle = CHGNet.load(use_device="cpu", verbose=False).eval()
    dataset = frames_to_dataset(frames, oracle.graph_converter)
    strained = [i for i, f in enumerate(frames) if f.info["kind"] == "strained"]
    assert strained and max(np.abs(frames[i].get_stress()).max() for i in strained) > 1e-3   # stress is tested
    for i in range(len(frames)):
        graph, target = dataset[i]
        pred = oracle([graph], task="efs")
        assert np.isclose(float(pred["e"][0]), float(target["e"]), atol=1e-5)
        assert np.allclose(pred["f"][0].detach().numpy(), target["f"].numpy(), atol=1e-4)
        assert np.allclose(pred["s"][0].detach().numpy(), target["s"].numpy(), atol=1e-3), (pred["s"][0], target["s"])


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

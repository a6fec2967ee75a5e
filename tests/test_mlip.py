"""matdisco.mlip: an energy-conserving potential trained with CHGNet's Trainer on oracle frames."""

import numpy as np
import pandas as pd
import pytest
import torch
from ase.build import bulk

from matdisco.mlip import (
    PotentialConfig,
    elemental_references,
    fit_composition_model,
    frames_to_dataset,
    load_potential,
    new_potential,
    potential_calculator,
    potential_errors,
    potential_path,
    train_potential,
    training_summary,
)
from matdisco.mlip_data import SamplingConfig, build_frames, load_frames


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from matdisco.oracle import make_calculator

    d = tmp_path_factory.mktemp("frames")
    cfg = SamplingConfig(rattles_per_temperature=3, strains=3, md_steps=0)
    src = {
        "li2o": bulk("Li2O", "fluorite", a=4.61),
        "lif": bulk("LiF", "rocksalt", a=4.03),
        "nacl": bulk("NaCl", "rocksalt", a=5.69),
    }
    return load_frames(build_frames(src, d, cfg, calculator=make_calculator("chgnet-0.3.0"), progress=False))


def test_saved_potential_reproduces_its_predictions_and_is_keyed_by_its_data(frames, tmp_path):
    train = [f for f in frames if f.info["formula"] != "NaCl"]
    cfg = PotentialConfig(epochs=2, batch_size=4)
    model, hist, key = train_potential(train, train[:4], cfg, root=tmp_path)
    again, _ = load_potential(potential_path(tmp_path, key))
    a = train[0].copy()
    a.calc = potential_calculator(model)
    b = train[0].copy()
    b.calc = potential_calculator(again)
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
    assert strained and max(np.abs(frames[i].get_stress()).max() for i in strained) > 1e-3  # stress is tested
    for i in range(len(frames)):
        graph, target = dataset[i]
        pred = oracle([graph], task="efs")
        assert np.isclose(float(pred["e"][0]), float(target["e"]), atol=1e-5)
        assert np.allclose(pred["f"][0].detach().numpy(), target["f"].numpy(), atol=1e-4)
        assert np.allclose(pred["s"][0].detach().numpy(), target["s"].numpy(), atol=1e-3), (pred["s"][0], target["s"])


def test_an_energy_conserving_potential_gives_forces_of_its_energy(frames):
    model = new_potential(PotentialConfig(seed=3))
    fit_composition_model(model, frames)
    a = frames[1].copy()
    a.calc = potential_calculator(model)
    f = a.get_forces()
    h = 1e-3
    i, k = 0, 2
    p = a.copy()
    p.calc = a.calc
    p.positions[i, k] += h
    ep = p.get_potential_energy()
    m = a.copy()
    m.calc = a.calc
    m.positions[i, k] -= h
    em = m.get_potential_energy()
    assert np.isclose(-(ep - em) / (2 * h), f[i, k], atol=2e-2)
    # sum of forces vanishes (translation invariance)
    assert np.abs(f.sum(0)).max() < 1e-3
    e = potential_errors(model, frames[:3])
    assert set(e.columns) >= {"energy_error_meV_atom", "force_mae_meV_A", "stress_mae_GPa"}


def test_a_nequip_student_trains_with_sevenn_is_reused_by_key_and_conserves_energy(frames, tmp_path):
    """sevenn trains a NequIP-family student end to end; a second call with the same frames and config returns the
    same checkpoint; its calculator's forces are minus the gradient of its energy, and its energy is on the labels'
    scale (the MP2020 elemental references added back)."""
    from matdisco.mlip import NequipConfig, calculator_errors, energy_offset, nequip_calculator, train_nequip

    cfg = NequipConfig(epochs=2, batch_size=4)
    path, history, key = train_nequip(frames, frames[:4], cfg, root=tmp_path)
    again, _, key2 = train_nequip(frames, frames[:4], cfg, root=tmp_path)
    assert again == path and key2 == key and len(history) == 2
    assert train_nequip(frames[1:], frames[:4], cfg, root=tmp_path)[2] != key
    calc = nequip_calculator(path)
    a = frames[0].copy()
    a.calc = calc
    f = a.get_forces()
    h, i, k = 1e-3, 1, 0
    p = a.copy()
    p.calc = calc
    p.positions[i, k] += h
    m = a.copy()
    m.calc = calc
    m.positions[i, k] -= h
    assert np.isclose(-(p.get_potential_energy() - m.get_potential_energy()) / (2 * h), f[i, k], atol=2e-3)
    per_atom_reference = energy_offset(a) / len(a)
    assert abs(a.get_potential_energy() / len(a) - per_atom_reference) < 3.0  # formation-energy scale, not 0
    errors = calculator_errors(calc, frames[:3])
    assert set(errors.columns) >= {"energy_error_meV_atom", "force_mae_meV_A", "stress_mae_GPa"}
    kept_by_sevenn = torch.load(path, map_location="cpu", weights_only=False)["epoch"]
    assert training_summary(history)["kept_epoch"] == kept_by_sevenn  # the epoch of the checkpoint it keeps


def test_training_summary_finds_the_kept_epoch_of_an_overfitting_run():
    """A sevenn history whose validation loss is lowest at epoch 2 of 4 (forces: training falls, validation rises
    after it) keeps epoch 2, and reports its forces beside the last epoch's; CHGNet's trainer keeps the last epoch;
    a table of neither trainer is refused."""
    sevenn_history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "trainset_Energy_MAE": [0.4, 0.3, 0.2, 0.1],
            "trainset_Force_MAE": [0.35, 0.25, 0.15, 0.10],
            "validset_Energy_MAE": [0.5, 0.4, 0.35, 0.3],
            "validset_Force_MAE": [0.45, 0.34, 0.42, 0.49],
            "validset_TotalLoss": [1.2, 0.6, 0.9, 1.0],
        }
    )
    summary = training_summary(sevenn_history)
    assert summary["epochs"] == 4 and summary["kept_epoch"] == 2
    assert summary["kept_train_f_mae"] == 0.25 and summary["kept_val_f_mae"] == 0.34
    assert summary["final_train_f_mae"] == 0.10 and summary["final_val_f_mae"] == 0.49
    assert summary["final_train_e_mae"] == 0.1 and summary["final_val_e_mae"] == 0.3
    chgnet_history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_e": [0.3, 0.2, 0.1], "val_e": [0.4, 0.3, 0.35], "train_f": [0.3, 0.2, 0.1]}
        | {"val_f": [0.4, 0.3, 0.5]}
    )
    assert training_summary(chgnet_history)["kept_epoch"] == 3
    assert training_summary(chgnet_history)["kept_val_f_mae"] == 0.5
    with pytest.raises(ValueError, match="not a training history"):
        training_summary(pd.DataFrame({"epoch": [1], "loss": [0.1]}))


def test_sevennet_0_zero_shot_beats_zero_force_on_oracle_labels(frames):
    "SevenNet-0 (shipped in the sevenn wheel), through each frame's MP2020 correction, against CHGNet's labels."
    from matdisco.mlip import SEVENNET_0, calculator_errors, error_summary, nequip_calculator
    from matdisco.mlip_data import frames_table

    summary = error_summary(calculator_errors(nequip_calculator(SEVENNET_0), frames))
    zero_force = 1000 * np.mean(np.concatenate([np.abs(f.get_forces()).ravel() for f in frames]))
    assert summary["force_mae_meV_A"] < 0.35 * zero_force, (summary, zero_force)
    assert summary["energy_mae_meV_atom"] < 150, summary  # two PBE-level potentials, one MP2020 scale
    assert len(frames_table(frames)) == len(frames)


def test_energy_offsets_round_trip(frames):
    "offset_frames subtracts exactly what ReferencedCalculator adds back, for both offsets."
    from ase.calculators.singlepoint import SinglePointCalculator
    from matdisco.mlip import ReferencedCalculator, offset_frames

    for kind in ("mp2020_elemental_references", "mp2020_correction"):
        shifted = offset_frames(frames[:3], kind)
        for a, b in zip(frames[:3], shifted):
            base = SinglePointCalculator(
                b.copy(), energy=b.get_potential_energy(), forces=b.get_forces(), stress=b.get_stress()
            )
            c = b.copy()
            c.calc = ReferencedCalculator(base, kind)
            assert np.isclose(c.get_potential_energy(), a.get_potential_energy(), atol=1e-8)
            assert np.allclose(c.get_forces(), a.get_forces()) and np.allclose(c.get_stress(), a.get_stress())
    with pytest.raises(ValueError, match="unknown energy offset"):
        ReferencedCalculator(None, "none")


def test_a_zero_force_calculator_scores_exactly_its_baseline_on_every_scored_set_and_kind(frames):
    """`held_out_report` puts every set's force error beside zero force on the same frames: a calculator that predicts
    zero must score a ratio of exactly 1 on each set and frame kind, and the oracle itself (whose labels these are)
    close to 0."""
    from ase.calculators.calculator import Calculator, all_changes

    from matdisco.mlip import held_out_report
    from matdisco.oracle import make_calculator

    class ZeroForce(Calculator):
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(atoms), 3)), "stress": np.zeros(6)}

    train = [f for f in frames if f.info["formula"] != "NaCl"]
    seen = [next(f for f in train if f.info["formula"] == formula) for formula in ("Li2O", "LiF")]
    test = [f for f in frames if f.info["formula"] == "NaCl"] + seen  # NaCl: a pair never seen in training
    report, errors = held_out_report(ZeroForce(), train, test, n_train_sample=5)
    assert set(errors.kind) == {"rattled", "strained"} and len(errors) == len(test)
    for name in ("held_out", "held_out_all_pairs_seen", "training_fit"):
        assert report[name]["force_mae_ratio_to_zero"] == pytest.approx(1.0, rel=1e-12), name
    assert [row["force_mae_ratio_to_zero"] for row in report["held_out_by_kind"]] == pytest.approx([1.0] * 2)
    assert report["held_out_all_pairs_seen"]["n_compositions"] == 2  # Li2O and LiF; NaCl's Na-Cl pair is unseen
    # contacts are judged on relaxation frames: with none among these, no composition counts as covered
    assert report["held_out_bonds_seen"]["n_compositions"] == 0
    assert report["training_fit"]["n_eval_frames"] == 5
    oracle, _ = held_out_report(make_calculator("chgnet-0.3.0"), train, test, n_train_sample=5)
    assert oracle["held_out"]["force_mae_ratio_to_zero"] < 1e-3

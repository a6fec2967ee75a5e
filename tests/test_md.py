"""matdisco.md: Li diffusivity and conductivity as GNoME computed them, and its superionic label."""

import numpy as np
import pandas as pd
from ase.build import bulk

import pytest

from matdisco.data import DataError
from matdisco.md import (
    MAX_TEMPERATURE_RATIO,
    MDConfig,
    SUPERIONIC_LOG10_MS_CM,
    is_superionic,
    li_transport,
    md_classification,
    md_reference_key,
    md_speed,
    md_supercell,
    oracle_md_reference,
    resolvable_threshold,
    run_md,
    superionic_label,
)
from matdisco.registry import EXPERIMENTS


def _random_walk(D_cm2_s, cfg, seed=0):
    "Antifluorite Li2O whose Li atoms random-walk with diffusivity D while O stays put."
    base = bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(2)
    step = np.sqrt(2 * D_cm2_s * 1e16 * cfg.timestep_fs * cfg.sample_every * 1e-15)  # Å per axis per stored frame
    rng = np.random.default_rng(seed)
    li = base.numbers == 3
    pos = base.positions.copy()
    frames = []
    for _ in range(cfg.n_steps // cfg.sample_every + 1):
        a = base.copy()
        a.positions = pos.copy()
        frames.append(a)
        pos[li] += rng.normal(0, step, (li.sum(), 3))
    return frames


def test_gnome_smoothed_max_analysis_recovers_a_known_diffusivity():
    cfg = MDConfig(total_ps=30.0, discard_ps=5.0, sample_every=10)  # smoothed="max", GNoME's setting
    for D in (1e-6, 1e-4):
        tr = li_transport(_random_walk(D, cfg), cfg, kinisi_errors=False)
        assert abs(np.log10(tr["D_cm2_s"] / D)) < 0.1, tr
    # sigma ∝ D (Nernst-Einstein at fixed n, T): two decades of D, two decades of sigma
    lo = li_transport(_random_walk(1e-6, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    hi = li_transport(_random_walk(1e-4, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    assert abs(np.log10(hi / lo) - 2) < 0.15


def test_a_superionic_walk_is_labelled_superionic():
    cfg = MDConfig(total_ps=30.0, discard_ps=5.0, sample_every=10)
    fast = li_transport(_random_walk(1e-4, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]  # liquid-like Li
    slow = li_transport(_random_walk(1e-7, cfg), cfg, kinisi_errors=False)["sigma_mS_cm"]
    assert is_superionic([fast])[0] and not is_superionic([slow])[0]
    assert np.isclose(10**SUPERIONIC_LOG10_MS_CM, 15.14, atol=0.01)


def test_too_short_a_run_gives_no_estimate_not_a_number_made_up():
    cfg = MDConfig(total_ps=0.5, discard_ps=0.0, sample_every=10)  # smoothed="max" needs > 1 ps windows
    tr = li_transport(_random_walk(1e-5, cfg), cfg, kinisi_errors=False)
    assert np.isnan(tr["sigma_mS_cm"]) and "DiffusionAnalyzer" in tr["reason"]


def test_supercells_reach_the_minimum_length_and_classification_counts_missing_as_negative():
    a = md_supercell(bulk("Li2O", "fluorite", a=4.61), 10.0)
    assert a.cell.lengths().min() >= 10.0
    t = pd.DataFrame(
        {
            "structure": ["x", "x"],
            "calculator": ["oracle", "ours"],
            "sigma_mS_cm": [100.0, np.nan],
            "D_cm2_s": [1e-5, np.nan],
            "diffusive": [True, np.nan],
            "sigma_floor_mS_cm": [1.0, np.nan],
        }
    )
    m = md_classification(t)
    assert m["FN"] == 1 and m["n_no_prediction"] == 1


def _reported_protocol():
    "The zero-shot MD protocol of the `cpu` mlip run: the configuration whose labels the README reports."
    mlip = next(e for e in EXPERIMENTS if e.name == "mlip")
    return MDConfig(**mlip.params_for("cpu")["md"])


def _vibrating(cfg, seed, *, D_cm2_s=0.0, u_li=0.14, u_framework=0.12, tau_fs=60.0):
    """Antifluorite Li2O in which every atom vibrates about its site (an Ornstein-Uhlenbeck process per axis: RMS u,
    correlation time tau, as an Einstein solid at ~1,000 K), the Li also random-walking with D on top."""
    base = bulk("Li2O", "fluorite", a=4.61, cubic=True).repeat(2)
    rng = np.random.default_rng(seed)
    li = base.numbers == 3
    u = np.where(li, u_li, u_framework)[:, None]
    dt_fs = cfg.timestep_fs * cfg.sample_every
    memory = np.exp(-dt_fs / tau_fs)
    step = np.sqrt(2 * D_cm2_s * 1e16 * dt_fs * 1e-15)  # Å per axis per stored frame
    vibration = rng.normal(0, 1, (len(base), 3)) * u
    walk = np.zeros((len(base), 3))
    frames = []
    for _ in range(cfg.n_steps // cfg.sample_every + 1):
        a = base.copy()
        a.positions = base.positions + vibration + walk
        frames.append(a)
        vibration = memory * vibration + np.sqrt(1 - memory**2) * u * rng.normal(0, 1, vibration.shape)
        walk[li] += rng.normal(0, step, (li.sum(), 3))
    return frames


def test_vibrating_li_is_not_superionic_and_a_diffusing_one_is_at_the_reported_protocol():
    """At the cpu protocol (2 ps, smoothed=False) Li that only vibrates reads sigma of tens of mS/cm, which GNoME's
    15.1 mS/cm threshold alone calls superionic in several seeds. The gated label never does: the run's
    detection floor is above GNoME's threshold, the protocol states the threshold its runs resolve, vibrating Li is
    labelled not superionic there and a Li walking with D = 1e-5 cm2/s is labelled superionic."""
    cfg = _reported_protocol()
    assert cfg.total_ps == 2.0 and cfg.smoothed is False
    vibrating = [li_transport(_vibrating(cfg, seed), cfg, kinisi_errors=False) for seed in range(8)]
    diffusing = li_transport(_vibrating(cfg, 0, D_cm2_s=1e-5), cfg, kinisi_errors=False)
    runs = pd.DataFrame(vibrating + [diffusing])
    assert is_superionic(runs.sigma_mS_cm[:8]).sum() >= 3  # the ungated threshold mislabels vibration
    assert (runs.sigma_floor_mS_cm > 10**SUPERIONIC_LOG10_MS_CM).all()  # 2 ps cannot resolve GNoME's threshold
    gnome = superionic_label(runs.sigma_mS_cm, runs.diffusive, runs.sigma_floor_mS_cm)
    assert np.isnan(gnome).all()  # so no label at it
    threshold = resolvable_threshold(runs.sigma_floor_mS_cm)
    labels = superionic_label(runs.sigma_mS_cm, runs.diffusive, runs.sigma_floor_mS_cm, threshold_mS_cm=threshold)
    assert not np.any(labels[:8] == 1.0) and np.sum(labels[:8] == 0.0) >= 7
    assert labels[8] == 1.0 and diffusing["sigma_mS_cm"] > threshold


def test_classification_metrics_on_a_table_with_a_known_answer():
    "Ten structures, reference 4 superionic / 6 not; the prediction gets 3 TP, 1 FN, 1 FP, 5 TN."
    ref = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    rows = []
    for k, (r, p) in enumerate(zip(ref, pred)):
        for name, lab in (("oracle", r), ("ours", p)):
            sigma = 100.0 if lab else 1.0
            rows.append(
                {
                    "structure": f"s{k}",
                    "calculator": name,
                    "sigma_mS_cm": sigma,
                    "D_cm2_s": sigma * 1e-7,
                    "diffusive": bool(lab),
                    "sigma_floor_mS_cm": 0.5,
                }
            )
    m = md_classification(pd.DataFrame(rows))
    assert (m["TP"], m["FN"], m["FP"], m["TN"]) == (3, 1, 1, 5)
    assert np.isclose(m["accuracy"], 0.8) and np.isclose(m["majority_baseline_accuracy"], 0.6)
    assert np.isclose(m["MCC"], (3 * 5 - 1 * 1) / np.sqrt(4 * 4 * 6 * 6))
    assert m["accuracy_lo95"] < 0.8 < m["accuracy_hi95"] and m["threshold_is_gnome"]
    assert m["n_D_pairs"] == 10 and np.isclose(m["mean_log10_ratio_D"], 0.0)  # one decade too slow, one too fast
    assert np.isclose(m["spearman_log_D"], (3 * 5 - 1 * 1) / np.sqrt(4 * 4 * 6 * 6))  # two-level ranks: rho = phi


def test_the_oracle_md_reference_is_computed_once_and_read_back_by_its_key(tmp_path, monkeypatch):
    """The reference runs the oracle once per (oracle version, protocol, structures) and writes its table and
    provenance; a later call reads it without running anything, another protocol gets another key, and a file that
    does not match its key is refused with its name."""
    from pymatgen.core import Lattice, Structure
    import matdisco.md as md

    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    cfg = MDConfig(total_ps=0.02, discard_ps=0.0, sample_every=2, min_length=4.0, max_atoms=16, smoothed=False)
    structures = {"li2o": li2o}
    cache, run = tmp_path / "cache", tmp_path / "run"
    table, meta = oracle_md_reference(
        structures, "chgnet-0.3.0", cfg, cache=cache, stores=[cache], out_dir=run, kinisi_errors=False, progress=False
    )
    key = md_reference_key(structures, "chgnet-0.3.0", cfg)
    assert (
        meta["key"] == key
        and (run / f"md-reference-{key}.csv").exists()
        and (cache / f"md-reference-{key}.json").exists()
    )
    assert (
        meta["structures"]["li2o"]["formula"] == "Li2O" and len(meta["structures"]["li2o"]["trajectory_sha256"]) == 64
    )
    assert meta["config"]["total_ps"] == 0.02 and meta["software"].startswith("chgnet-")
    assert list(table.calculator) == ["oracle"] and table.n_atoms.iloc[0] == 12

    def no_md(*args, **kwargs):
        raise AssertionError("the reference was recomputed")

    monkeypatch.setattr(md, "screen_conductors", no_md)
    again, _ = oracle_md_reference(structures, "chgnet-0.3.0", cfg, cache=cache, stores=[cache], progress=False)
    pd.testing.assert_frame_equal(again, pd.read_csv(run / f"md-reference-{key}.csv"))
    assert (
        md_reference_key(
            structures,
            "chgnet-0.3.0",
            MDConfig(total_ps=0.04, discard_ps=0.0, sample_every=2, min_length=4.0, max_atoms=16, smoothed=False),
        )
        != key
    )
    # a failed run is not frozen into a reference
    monkeypatch.setattr(
        md,
        "screen_conductors",
        lambda *a, **k: pd.DataFrame(
            [{"structure": "li2o", "calculator": "oracle", "reason": "md: FloatingPointError: non-finite positions"}]
        ),
    )
    other = MDConfig(total_ps=0.06, discard_ps=0.0, sample_every=2, min_length=4.0, max_atoms=16, smoothed=False)
    _, failed = oracle_md_reference(structures, "chgnet-0.3.0", other, cache=cache, stores=[cache], progress=False)
    other_key = md_reference_key(structures, "chgnet-0.3.0", other)
    assert failed["incomplete"] == ["li2o"] and not list(cache.glob(f"md-reference-{other_key}*"))
    (cache / f"md-reference-{key}.json").write_text('{"key": "something-else", "structures": {}}')
    with pytest.raises(DataError, match=f"md-reference-{key}.json"):
        oracle_md_reference(structures, "chgnet-0.3.0", cfg, cache=cache, stores=[cache], progress=False)


def test_md_speed_times_each_potential_on_the_same_cell():
    from pymatgen.core import Lattice, Structure

    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    speed = md_speed(li2o, {"oracle": "chgnet-0.3.0"}, steps=3, min_length=4.0)
    assert set(speed) == {"oracle"} and 0 < speed["oracle"] < 1e4


def test_an_exploding_run_stops_at_once_with_its_reason_instead_of_hanging(tmp_path):
    """A potential that pushes atoms apart (here ±50 eV/Å, alternating) heats the cell far past the thermostat within
    a few steps; the run stops there (`MAX_TEMPERATURE_RATIO`), before the next force call on runaway positions (a
    student's MD once spent hours in matscipy's neighbour list), and leaves no trajectory to be read as a result."""
    from ase.calculators.calculator import Calculator, all_changes

    class Repulsive(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            signs = np.where(np.arange(len(self.atoms)) % 2 == 0, 1.0, -1.0)
            self.results = {"energy": 0.0, "forces": 50.0 * signs[:, None] * np.ones((len(self.atoms), 3))}

    config = MDConfig(temperature_K=300.0, total_ps=1.0, discard_ps=0.0, sample_every=10)
    path = tmp_path / "li.extxyz"
    with pytest.raises(FloatingPointError, match="exploded") as stopped:
        run_md(bulk("Li", cubic=True).repeat(2), Repulsive(), config, path, progress=False)
    temperature = float(str(stopped.value).split("T = ")[1].split(" K")[0])
    assert temperature >= MAX_TEMPERATURE_RATIO * config.temperature_K
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_your_own_calculator_runs_the_md_protocol_as_the_named_oracle_does(tmp_path):
    """CHGNet 0.3.0's ASE calculator built by hand, under a name of its own, runs the same NVT protocol in this
    process: the named oracle's trajectory and transport numbers (same model, same seed), kept in a folder of its own
    name; an object without a name has nowhere to keep its trajectories."""
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.core import Lattice, Structure

    from matdisco.md import calculator_tag, md_trajectory_path, screen_conductors
    from matdisco.oracle import load_chgnet

    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    config = MDConfig(total_ps=0.04, discard_ps=0.0, sample_every=5, min_length=4.0, max_atoms=64, smoothed=False)
    calculator = CHGNetCalculator(model=load_chgnet("0.3.0"), use_device="cpu")
    calculators = {"named": "chgnet-0.3.0", "by hand": calculator}
    table = screen_conductors({"li2o": li2o}, calculators, config, tmp_path, kinisi_errors=False, progress=False)
    assert list(table.calculator) == ["by hand", "named"] and not table.reason.fillna("").any()
    numbers = [c for c in table.columns if table[c].dtype.kind == "f" and c != "steps_per_s"]
    assert {"li_msd_A2", "framework_msd_A2", "mean_temperature_K"} <= set(numbers)
    np.testing.assert_allclose(table.loc[0, numbers].astype(float), table.loc[1, numbers].astype(float), rtol=1e-5)
    mine = md_trajectory_path(tmp_path, calculator, config, "li2o", "by hand")
    assert mine.exists() and mine.parents[1].name == "by hand"
    with pytest.raises(ValueError, match="name of their own"):
        calculator_tag(calculator)

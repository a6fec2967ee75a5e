"""matdisco.discovery: rounds at one level of theory, resumable to the same result, rediscoveries separated from new
materials, elemental references checked against MP2020; acquisition and curves."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matdisco.discovery import (
    DiscoveryConfig,
    Generated,
    Pool,
    RandomFilter,
    Selection,
    acquisition_scores,
    best_of_compositions,
    control_sample,
    classify_hits,
    discovery_curve,
    discovery_dir,
    enrichment_interval,
    enrichment_table,
    known_reduced_formulas,
    pretrained_dir,
    reference_frame,
    run_discovery,
    retrospective_score,
    round_metrics,
    stable_materials,
    structural_picks,
    verdict_counts,
)
from matdisco.metrics import HIT_VERDICTS
from matdisco.oracle import NamedOracle, OracleStore
from matdisco.reference import elemental_references

CFG = DiscoveryConfig(
    elements=("Li", "Mn", "O"),
    rounds=2,
    budget=6,
    control_budget=3,
    ensemble_size=2,
    width=24,
    epochs=6,
    retrain_epochs=2,
    max_steps=40,
    compositions_per_round=1,
    control_compositions=1,
    structures_per_composition=2,
    n_parents=4,
    composition_epochs=10,
)


def timing_columns(table: pd.DataFrame) -> list[str]:
    "Columns that measure time or speed, not results: they differ between any two runs."
    return [c for c in table.columns if c.startswith("wall_") or c.endswith("_per_s")]


def test_two_rounds_recorded_resumable_and_equal_to_an_uninterrupted_run(mirror, tmp_path):
    run = tmp_path / "disc"
    work = discovery_dir(CFG, run)
    first = run_discovery(CFG, run, rounds=1)  # "killed" after round 0
    assert list(first["round"]) == [0]
    store = OracleStore(work / "oracle.sqlite")
    n_relax_round0 = len(store.table("chgnet-0.3.0"))
    done0 = (work / "round_0" / "done.json").stat().st_mtime_ns
    table = run_discovery(CFG, run)  # rerun: round 0 is not recomputed
    assert (work / "round_0" / "done.json").stat().st_mtime_ns == done0
    assert list(table["round"]) == [0, 1]
    relaxations = store.table("chgnet-0.3.0")
    per_round = (
        CFG.budget
        + CFG.control_budget
        + (CFG.compositions_per_round + CFG.control_compositions) * CFG.structures_per_composition
    )
    assert len(relaxations) <= 2 * per_round  # the run's own: both arms of both kinds, per round
    assert len(relaxations) > n_relax_round0
    rec = json.loads((work / "round_1" / "done.json").read_text())
    for key in (
        "generated",
        "unique_novel",
        "evaluated",
        "hit_rate",
        "hit_rate_structural",
        "hit_rate_compositional",
        "hit_rate_new",
        "mae_before_retraining",
        "new_stable_vs_reference",
        "rediscovered_stable_vs_reference",
        "new_stable_on_updated_hull",
        "level_disagreement_mae",
        "oracle_unconverged",
        "control_hit_rate",
        "enrichment",
        "pool_substitution",
        "pool_saps",
        "pool_random_search",
        "new_stable_vs_reference_ternary",
        "oracle_relaxations_per_s",
        "wall_oracle_s",
        "wall_train_s",
    ):
        assert key in rec
    assert 0 < rec["filtered"] <= CFG.budget and 0 < rec["control"] <= CFG.control_budget
    assert (
        max(rec["filtered"], rec["control"])
        <= rec["evaluated"] - rec["airss_structures"]
        <= rec["filtered"] + rec["control"]
    )
    assert (
        rec["compositions_filtered"] == CFG.compositions_per_round
        and rec["compositions_control"] == CFG.control_compositions
    )
    assert 0 < rec["airss_structures"] <= 2 * CFG.structures_per_composition and rec["composition_pool"] >= 2
    assert 0 <= rec["hit_rate"] <= 1 and 0 <= rec["control_hit_rate"] <= 1
    assert (
        rec["pool_substitution"] + rec["pool_saps"] + rec["pool_random_search"]
        == rec["pool"]
        <= rec["unique_novel"]
        <= rec["generated"]
    )
    assert rec["pool"] + rec["outside_coverage"] == rec["unique_novel"]
    assert (
        sum(rec[f"new_stable_vs_reference_{a}"] for a in ("binary", "ternary", "quaternary", "5plus"))
        == rec["new_stable_vs_reference"]
    )
    assert table.cumulative_evaluated.iloc[-1] == table.evaluated.sum()
    assert (
        rec["train_size"] > json.loads((work / "round_0" / "done.json").read_text())["train_size"]
    )  # results were added
    assert 0 < rec["level_disagreement_mae"] < 0.5  # DFT (pre-2020) vs oracle (MP2020) labels, eV/atom
    assert len(list((work / "trajectories").glob("*.extxyz"))) == len(relaxations)  # MLIP training data kept
    # the reference is the whole chemical space (no size cap), and no rediscovery is counted as new
    assert rec["reference_size"] == len(reference_frame(CFG)) == 60
    mp = known_reduced_formulas()
    ev = pd.concat([pd.read_csv(work / f"round_{r}" / "evaluated.csv") for r in (0, 1)])
    assert not ev.formula[ev.status == "new"].isin(mp).any()
    # no selection by a later snapshot's answers: coverage is recorded per evaluated structure, not used to choose
    assert CFG.max_hull_gap is None and rec["outside_coverage"] == 0 and ev.reference_covered.dtype == bool
    assert (
        0 <= rec["evaluated_outside_coverage"] <= rec["evaluated"]
        and "hit_rate_covered" in rec
        and "control_hit_rate_covered" in rec
    )
    assert (ev.status[ev.formula.isin(mp) & ev.used_as_label] == "rediscovered").all()
    assert {"rediscovered", "new", "repeat", "failed", "unconverged"} >= set(ev.status)
    assert (ev.status[~ev.converged & ev.status.ne("failed")] == "unconverged").all() and not ev.used_as_label[
        ~ev.converged
    ].any()
    # round 0's filter is pretrained on the whole reference once per machine, in the shared cache, keyed by its training
    # settings and data; the run in another folder below reuses it instead of training again
    pretrained = {p: p.stat().st_mtime_ns for p in pretrained_dir().glob("*/member_*/done.json")}
    assert len(pretrained) >= CFG.ensemble_size and not (work / "round_0" / "models").exists()
    # killed-and-resumed == uninterrupted (each round draws from its own (seed, round) stream)
    straight = run_discovery(CFG, tmp_path / "straight")
    assert {p: p.stat().st_mtime_ns for p in pretrained_dir().glob("*/member_*/done.json")} == pretrained
    pd.testing.assert_frame_equal(
        table.drop(columns=timing_columns(table)),
        straight.drop(columns=timing_columns(straight)),
        check_exact=False,
        rtol=1e-6,
    )
    # the control arm is a random sample of the pool: its rows are marked, and the filter's hit rate is over its own
    # rows
    structural = ev.generator != "random_search"
    assert ev.control[structural].sum() == table.control.sum() and ev.filtered[structural].sum() == table.filtered.sum()
    # compositional arm: random structures of compositions unknown to MP; per composition the lowest-energy one counts
    airss = ev[~structural]
    assert len(airss) == table.airss_structures.sum() and not airss.formula.isin(mp).any()
    for f, g in airss[airss.used_as_label].groupby("formula"):
        assert (
            g.best_of_composition.sum() == 1 and g.oracle_e_form[g.best_of_composition].iloc[0] == g.oracle_e_form.min()
        )
    assert airss.pred_composition_model.notna().all() and airss.pred_e_form.isna().all()
    # the enrichment table recounts both arms from evaluated.csv and gets the loop's own hit rates back
    et = enrichment_table(work)
    for kind, suffix in (("all", ""), ("structural", "_structural"), ("compositional", "_compositional")):
        per_round = et[(et.kind == kind) & ~et.rounds.str.contains("pooled")]
        np.testing.assert_allclose(per_round.hit_rate_filtered, table[f"hit_rate{suffix}"])
        np.testing.assert_allclose(per_round.hit_rate_control, table[f"control_hit_rate{suffix}"])
    np.testing.assert_allclose(
        et[(et.kind == "all") & (et.rounds == "1-1 pooled")].enrichment, table.enrichment.iloc[[1]]
    )
    # ... and, apart, the structural picks in systems whose reference can verify a hit (a filter that finds holes shows)
    for r in (0, 1):
        row = et[(et.kind == "covered") & (et.rounds == str(r))].iloc[0]
        e_r = pd.read_csv(work / f"round_{r}" / "evaluated.csv")
        picks = e_r[(e_r.generator != "random_search") & e_r.filtered & e_r.reference_covered]
        assert row.filtered_units == len(picks) and row.filtered_hits == int((picks.e_hull_vs_current <= 0).sum())
        assert row.filtered_units <= et[(et.kind == "structural") & (et.rounds == str(r))].filtered_units.iloc[0]
    # each stable composition once: every formula the rounds count as new (or rediscovered) stable, and nothing else
    sm = stable_materials(work)
    assert sm.formula.is_unique and (sm.e_hull_vs_reference <= 0).all()
    for status, col in (("new", "new_stable_vs_reference"), ("rediscovered", "rediscovered_stable_vs_reference")):
        below = ev[(ev.status == status) & (ev.e_hull_vs_reference <= 0)]
        assert set(sm.formula[sm.status == status]) == set(below.formula)
        assert table[col].max() <= (sm.status == status).sum() <= table[col].sum()
    # matdisco evaluate scores each round's candidates as proposed, reusing the run's own relaxations (none is redone)
    from matdisco.evaluate import discovery_evaluate_config, discovery_round_samples, evaluate_structures

    samples = discovery_round_samples(work)
    assert list(samples) == ["round 0", "round 1"] and len(samples["round 1"][1]) == table.evaluated.iloc[1]
    n_before = len(store.table("chgnet-0.3.0"))
    scored = evaluate_structures(
        samples["round 1"][1],
        samples["round 1"][0],
        config=discovery_evaluate_config(work, n_workers=1),
        store=store,
        scheduler=None,
        progress=False,
    )
    assert len(store.table("chgnet-0.3.0")) == n_before and scored.metrics["n_submitted"] == table.evaluated.iloc[1]
    # matdisco.validation reads each composition's converged, lowest-energy structure back from the run's store and
    # recomputes the run's own verdict at the base level exactly (same hull, same references; nothing relaxed again)
    from matdisco.validation import ValidationConfig, discovery_candidates, validate_structures

    cands = discovery_candidates(work)
    assert cands.formula.is_unique and len(cands) and (cands.oracle == CFG.oracle).all()
    v = validate_structures(
        cands.id,
        cands.structure,
        ValidationConfig(oracles=(), n_workers=1),
        base_energies=cands.energy_per_atom,
        scheduler=None,
    )
    assert len(store.table("chgnet-0.3.0")) == n_before
    loop = ev[ev.converged & ev.e_hull_vs_reference.notna()].groupby("formula").e_hull_vs_reference.min()
    mine = v.table.set_index("formula").e_hull
    assert len(mine) and set(mine.index) <= set(loop.index)
    np.testing.assert_allclose(mine.to_numpy(), loop.reindex(mine.index).to_numpy(), atol=1e-6)


def test_stable_materials_counts_a_composition_once_at_its_deepest_structure(tmp_path):
    def round_dir(r, rows):
        d = tmp_path / f"round_{r}"
        d.mkdir()
        (d / "done.json").write_text(json.dumps({"round": r, "level_disagreement_mae": 0.06}))
        pd.DataFrame(
            rows,
            columns=[
                "formula",
                "n_elements",
                "generator",
                "filtered",
                "control",
                "status",
                "e_hull_vs_reference",
                "oracle_e_form",
                "hull_gap",
            ],
        ).to_csv(d / "evaluated.csv", index=False)

    round_dir(
        0,
        [
            ("LiMnO4", 3, "substitution", True, False, "new", -0.02, -1.9, 0.0),
            ("LiMnO4", 3, "saps", True, False, "new", 0.01, -1.8, 0.0),  # above the hull: not stable
            ("Li2O", 2, "substitution", False, True, "rediscovered", -0.001, -2.0, 0.0),
            ("MnO5", 2, "substitution", True, False, "failed", None, None, 0.0),
        ],
    )  # no label: unstable (missing)
    round_dir(
        1,
        [
            ("LiMnO4", 3, "substitution", True, False, "new", -0.2, -2.1, 0.0),  # deeper polymorph, later round
            ("Li3MnO5", 3, "saps", False, True, "new", -0.07, -2.2, 0.01),
            ("Zn3I2", 2, "substitution", True, False, "new", -0.6, -0.4, 0.3),
        ],
    )  # where mp2018 lacks MP's ZnI2
    sm = stable_materials(tmp_path).set_index("formula")
    assert sm.loc["Zn3I2", "verdict"] == "reference_hole"  # kept and classified, not dropped
    sm = sm.drop(index="Zn3I2")
    assert list(sm.index) == ["LiMnO4", "Li3MnO5", "Li2O"]  # deepest first
    assert sm.loc["LiMnO4", "round"] == 0 and sm.loc["LiMnO4", "e_hull_vs_reference"] == -0.2
    assert sm.loc["LiMnO4", "beyond_level_disagreement"] and sm.loc["Li3MnO5", "beyond_level_disagreement"]
    assert not sm.loc["Li2O", "beyond_level_disagreement"] and sm.loc["Li2O", "status"] == "rediscovered"
    assert sm.loc["Li3MnO5", "arm"] == "control" and sm.loc["LiMnO4", "arm"] == "filtered"
    assert sm.loc["Li2O", "verdict"] == "verified_rediscovery"  # known, on MP's hull
    assert set(sm.verdict) <= set(HIT_VERDICTS)
    counts = verdict_counts(sm.reset_index(), "round").set_index("round")
    assert counts.loc["all", "n_hits"] == 3 and counts.loc["all", "n_verified_rediscovery"] == 1
    assert counts.loc[0, "n_hits"] == 2 and counts.loc[1, "n_hits"] == 1  # each composition in its first round
    assert counts.loc["all", "n_reference_hole"] == 0
    assert len(stable_materials(tmp_path / "empty")) == 0


def test_enrichment_is_the_ratio_of_hit_rates_and_undefined_without_control_hits():
    from matdisco.discovery import enrichment

    assert enrichment(0.5, 0.1) == pytest.approx(5.0)
    assert np.isnan(enrichment(0.5, 0.0)) and np.isnan(enrichment(float("nan"), 0.2))
    assert enrichment(0.0, 0.25) == 0.0
    # Katz log interval: 5/20 filtered vs 1/10 control is 2.5x, but one control hit leaves it unresolved (spans 1)
    ratio, low, high = enrichment_interval(5, 20, 1, 10)
    assert (
        ratio == pytest.approx(2.5)
        and low < 1 < high
        and np.log(ratio) - np.log(low) == pytest.approx(np.log(high) - np.log(ratio))
    )
    assert enrichment_interval(50, 200, 10, 400)[1] > 2  # 25 % vs 2.5 %, enough units: resolved above 2x
    assert np.isnan(enrichment_interval(3, 10, 0, 10)[0]) and enrichment_interval(0, 10, 2, 10)[0] == 0.0


def test_artefacts_are_keyed_by_the_full_configuration():
    assert discovery_dir(CFG, "r") != discovery_dir(replace(CFG, budget=5), "r")
    assert discovery_dir(CFG, "r") != discovery_dir(replace(CFG, fmax=0.05), "r")
    assert discovery_dir(CFG, "r") == discovery_dir(
        replace(CFG, rounds=6, n_workers=1), "r"
    )  # how far, how fast: same rounds


def test_elemental_references_follow_the_rule(mirror, tmp_path):
    """N's only usable mp2018 cell is 0.93 eV/atom off: MP2020 stands in, flagged; O is fine; S, F, Br (no mp2018
    crystal) come from the mirror's starting structures, relaxed by the oracle; Xe has no structure anywhere."""
    store = OracleStore(tmp_path / "store.sqlite")
    t = elemental_references(["N", "O", "S", "F", "Br", "Xe"], store).set_index("element")
    assert t.loc["N", "flagged"] and t.loc["N", "delta"] > 0.5 and t.loc["N", "mu"] == t.loc["N", "mu_mp2020"]
    assert "mp-754514" in t.loc["N", "source"] or t.loc["N", "structure"] == "mp-754514"
    assert not t.loc["O", "flagged"] and abs(t.loc["O", "delta"]) < 0.1 and t.loc["O", "mu"] == t.loc["O", "mu_oracle"]
    for el in ("S", "F", "Br"):  # measured here: within 0.005, 0.092 and 0.069 eV/atom of MP2020
        assert not t.loc[el, "flagged"] and abs(t.loc[el, "delta"]) < 0.1 and t.loc[el, "mu"] == t.loc[el, "mu_oracle"]
        assert t.loc[el, "structure"].startswith(f"{el} ")
    assert t.loc["S", "structure"].startswith("S Fddd")  # alpha-S8, not the 1-atom Delta-test cell
    assert (
        t.loc["Xe", "flagged"]
        and "no elemental structure" in t.loc["Xe", "source"]
        and np.isnan(t.loc["Xe", "mu_oracle"])
    )
    assert t.loc["Xe", "mu"] == t.loc["Xe", "mu_mp2020"]
    with pytest.raises(ValueError, match=r"elemental reference for N: .*\+0\.9\d\d eV/atom from MP2020"):
        elemental_references(["N"], store, on_bad_reference="raise")
    with pytest.raises(ValueError, match="not MP2020-compatible"):
        elemental_references(["S"], store, oracle="chgnet-r2scan")


def test_a_known_nitride_is_not_falsely_stable(mirror, tmp_path):
    "Li3N at the oracle's level: with mp-754514 as N's reference it is ~0.4 eV/atom too stable; by the rule it is not."
    from matdisco.data import load_structures, read_index
    from matdisco.oracle import formation_energy_per_atom
    from matdisco.discovery import single_points

    idx = read_index()
    row = idx[(idx.reduced_formula == "Li3N") & ~idx.is_outlier].sort_values("formation_energy_per_atom").iloc[0]
    s = load_structures([row.row_index], progress=False).frame.structure.iloc[0]
    store = OracleStore(tmp_path / "store.sqlite")
    t = elemental_references(["Li", "N"], store).set_index("element")
    e = single_points([s], store, "chgnet-0.3.0")
    rule = formation_energy_per_atom([s], e, t["mu"].to_dict())[0]
    naive = formation_energy_per_atom([s], e, {"Li": t.loc["Li", "mu"], "N": t.loc["N", "mu_oracle"]})[0]
    assert abs(rule - row.formation_energy_per_atom) < 0.15  # eV/atom: agrees with DFT
    assert naive < rule - 0.2  # the bad reference made it look far more stable


def test_classify_hits_after_relaxation(mirror):
    from matdisco.candidates import NoveltyChecker
    from matdisco.data import load_structures

    li2o = load_structures([25542], progress=False).frame.structure.iloc[0]  # mp-755894 Li2O
    moved = li2o.copy()
    moved.translate_sites(range(len(moved)), [0.1, 0.2, 0.3])
    odd = li2o.copy()
    odd.replace_species({"O": "S"})  # Li2S: known to MP as a composition
    known = NoveltyChecker([li2o])
    none = NoveltyChecker([])
    assert classify_hits([moved, None], known_structures=known, mp_formulas=frozenset(), earlier=none) == [
        "rediscovered",
        "failed",
    ]
    assert classify_hits([odd], known_structures=known, mp_formulas=frozenset({"Li2S"}), earlier=none) == [
        "rediscovered"
    ]
    assert classify_hits([odd], known_structures=known, mp_formulas=frozenset(), earlier=none) == ["new"]
    assert classify_hits([odd], known_structures=known, mp_formulas=frozenset(), earlier=NoveltyChecker([odd])) == [
        "repeat"
    ]
    assert {"LiMn2O4", "Li2O", "TiO2", "NaN"} <= known_reduced_formulas()  # MP compositions, plus mp2018's own


def test_acquisition_and_curves():
    mean, std = np.array([0.1, -0.05, 0.0, 0.3]), np.array([0.0, 0.0, 0.2, 0.5])
    assert np.argsort(acquisition_scores(mean, std, kind="greedy"))[0] == 1
    assert np.argsort(acquisition_scores(mean, std, kind="lcb", kappa=1.0))[0] == 3  # most optimistic: 0.3 − 0.5
    with pytest.raises(ValueError, match="unknown acquisition"):
        acquisition_scores(mean, std, kind="ucb")
    assert discovery_curve([2, 0, 1], [True, False, True]).tolist() == [1, 2, 2]


def test_elemental_references_command_writes_the_table(mirror, tmp_path, capsys):
    from matdisco.cli import main

    assert main(["elemental-references", "O", "Xe", "--out", str(tmp_path)]) == 0
    t = pd.read_csv(tmp_path / "elemental_references.csv").set_index("element")
    assert not t.loc["O", "flagged"] and t.loc["Xe", "flagged"] and "Xe" in capsys.readouterr().out


def test_a_retrospective_run_scores_the_later_known_compositions_it_found(tmp_path):
    "Under known_snapshot='mp2018' AlInN2 is new to the loop; found stable, it counts as a rediscovery MP made later."
    config = {**DiscoveryConfig().__dict__, "elements": ["Al", "In", "N"], "max_sites": 16, "known_snapshot": "mp2018"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    d = tmp_path / "round_0"
    d.mkdir()
    (d / "done.json").write_text(json.dumps({"round": 0, "level_disagreement_mae": 0.06}))
    pd.DataFrame(
        [
            ("AlInN2", 3, "substitution", True, False, "new", -0.01, -0.9, 0.0),
            ("Al3InN4", 3, "saps", True, False, "new", 0.05, -0.8, 0.0),  # above the hull: not found
            ("AlN", 2, "substitution", False, True, "rediscovered", 0.0, -1.5, 0.0),
        ],
        columns=[
            "formula",
            "n_elements",
            "generator",
            "filtered",
            "control",
            "status",
            "e_hull_vs_reference",
            "oracle_e_form",
            "hull_gap",
        ],
    ).to_csv(d / "evaluated.csv", index=False)
    score = retrospective_score(tmp_path)
    assert score["known_snapshot"] == "mp2018" and score["n_targets"] == 3
    assert score["found"] == ["AlInN2"] and score["recall"] == pytest.approx(1 / 3) and score["n_hits"] == 2
    assert stable_materials(tmp_path).set_index("formula").loc["AlInN2", "verdict"] == "verified_rediscovery"


# ---- the loop as stages -------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "discovery"


def profile_config(profile: str) -> DiscoveryConfig:
    "The discovery experiment's `DiscoveryConfig` at `profile`: its notebook's parameters updated by the runner's."
    from matdisco.registry import EXPERIMENTS

    notebook = json.loads((Path(__file__).parents[1] / "nbs" / "experiments" / "05_discovery.ipynb").read_text())
    parameters = {}
    exec("".join(notebook["cells"][1]["source"]), parameters)
    parameters.update(next(e for e in EXPERIMENTS if e.name == "discovery").params_for(profile))
    fields = DiscoveryConfig.__dataclass_fields__
    return DiscoveryConfig(**{k: tuple(v) if k == "elements" else v for k, v in parameters.items() if k in fields})


def assert_same_rounds(run: Path, frozen: Path):
    """The rounds table and every round's evaluated.csv of `run` equal the frozen ones: every pick, label and verdict;
    floats to 1e-5 relative or 1e-6 absolute (the GNN's float32 sums differ in their last bits between processes);
    timing aside."""
    table = pd.read_csv(run / "rounds.csv")
    table = table.drop(columns=timing_columns(table))
    expected = pd.read_csv(frozen / "rounds.csv")
    assert set(table.columns) == set(expected.columns)
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_exact=False, rtol=1e-5, atol=1e-6)
    for r in range(len(expected)):
        pd.testing.assert_frame_equal(
            pd.read_csv(run / f"round_{r}" / "evaluated.csv"),
            pd.read_csv(frozen / f"round_{r}_evaluated.csv"),
            check_exact=False,
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("profile", ["smoke", pytest.param("tiny", marks=pytest.mark.slow)])
def test_the_loop_of_stages_reproduces_the_monolithic_loop(mirror, tmp_path, profile):
    """The fixtures were written by the loop before it became stages (one 428-line function, commit a21a83f), at
    the discovery experiment's `smoke` and `tiny` parameters: the stages compute the same rounds, pick for pick.
    `tiny` has a relaxation that ends at the step cap on some CPUs and converges on others (and the next round's model
    moves with that one label), so it holds for the machine that wrote it: `fixtures/make_discovery_fixture.py`
    rewrites it from a21a83f on another."""
    config = profile_config(profile)
    run_discovery(config, tmp_path)
    assert_same_rounds(discovery_dir(config, tmp_path), FIXTURES / profile)


def _evaluated_table(rows: list[dict]) -> pd.DataFrame:
    defaults = {
        "composition": "",
        "filtered": False,
        "control": False,
        "used_as_label": True,
        "oracle_ok": True,
        "converged": True,
        "reference_covered": True,
        "status": "new",
        "n_elements": 3,
        "pred_e_form": np.nan,
        "pred_composition_model": np.nan,
        "on_updated_hull": False,
    }
    table = pd.DataFrame([defaults | row for row in rows])
    table["e_hull_vs_reference"] = table.e_hull_vs_current
    return table


def test_round_metrics_on_a_round_with_a_known_answer():
    """Filtered arm: structures A (hit) and B (miss) and composition X, whose best of two structures is a hit (the
    other is not): 2 hits of 3 units. Control: structure C (miss) and composition Y (one structure, a miss): 0 of 2.
    A is also a control pick (drawn by both arms): control 1 of 3. Polymorphs A, A' count once as a material."""
    evaluated = _evaluated_table(
        [
            {"formula": "A", "filtered": True, "control": True, "e_hull_vs_current": -0.01, "oracle_e_form": -1.0},
            {"formula": "B", "filtered": True, "e_hull_vs_current": 0.20, "oracle_e_form": -0.5},
            {
                "formula": "C",
                "control": True,
                "e_hull_vs_current": 0.05,
                "oracle_e_form": -0.7,
                "reference_covered": False,
            },
            {"formula": "X", "composition": "X", "filtered": True, "e_hull_vs_current": 0.3, "oracle_e_form": -0.2},
            {"formula": "X", "composition": "X", "filtered": True, "e_hull_vs_current": -0.1, "oracle_e_form": -0.9},
            {"formula": "Y", "composition": "Y", "control": True, "e_hull_vs_current": 0.4, "oracle_e_form": -0.3},
            {"formula": "A", "filtered": True, "e_hull_vs_current": -0.02, "oracle_e_form": -1.01, "status": "repeat"},
        ]
    )
    evaluated.loc[evaluated.composition.eq("X"), "pred_composition_model"] = -0.5
    evaluated.loc[evaluated.composition.eq("Y"), "pred_composition_model"] = -0.1
    evaluated["pred_e_form"] = [-0.9, -0.6, -0.6, np.nan, np.nan, np.nan, -1.0]
    evaluated["best_of_composition"] = best_of_compositions(evaluated)
    assert list(evaluated.best_of_composition) == [False, False, False, False, True, True, False]
    compositions = pd.DataFrame(
        {"formula": ["X", "Y"], "filtered": [True, False], "control": [False, True], "covered": [True, True]}
    )
    m = round_metrics(evaluated, compositions)
    assert m["filtered"] == 3 and m["control"] == 2 and m["evaluated"] == 7 and m["airss_structures"] == 3
    assert m["hit_rate"] == pytest.approx(3 / 4)  # A, A' (a repeat), X of A, B, A', X
    assert m["hit_rate_structural"] == pytest.approx(2 / 3) and m["hit_rate_compositional"] == 1.0
    assert m["control_hit_rate"] == pytest.approx(1 / 3)  # A of A, C, Y
    assert m["enrichment"] == pytest.approx((3 / 4) / (1 / 3))
    assert m["hit_rate_new"] == pytest.approx(2 / 4)  # A', a repeat, is not new
    assert m["control_hit_rate_covered"] == pytest.approx(1 / 2)  # C is outside coverage
    assert m["evaluated_outside_coverage"] == 1
    assert m["new_stable_vs_reference"] == 2  # A and X: polymorphs once
    assert m["repeat_stable_vs_reference"] == 1
    assert m["mae_before_retraining"] == pytest.approx(np.mean([0.1, 0.1, 0.1, 0.01]))
    assert m["composition_model_mae"] == pytest.approx(np.mean([0.4, 0.2]))


def test_the_control_arm_and_the_structural_picks():
    rng = np.random.default_rng(0)
    control = control_sample(rng, 10, 4)
    assert len(control) == 4 and list(control) == sorted(set(control)) and control.max() < 10
    assert list(control_sample(rng, 3, 5)) == [0, 1, 2] and len(control_sample(rng, 0, 5)) == 0
    pool = Pool(candidates=list("abcde"), n_unique=5, n_novel=5, n_unique_novel=5)
    selection = Selection(np.array([4, 1]), np.arange(5.0), np.ones(5))
    picks = structural_picks(pool, selection, np.array([1, 2]))
    assert picks.candidates == ["e", "b", "c"]  # the filter's, best first, then the control's others, each once
    assert list(picks.filtered) == [True, True, False] and list(picks.control) == [False, True, True]
    assert list(picks.predicted) == [4.0, 1.0, 2.0] and picks.composition == ["", "", ""]


class ParentsLessOneSite:
    "A user's generator (not a library class): each parent without its last site; it keeps what it made."

    def __init__(self):
        self.made = []

    def __call__(self, context, state):
        from matdisco.candidates import Candidate, SkipLog

        candidates = []
        for material_id, structure in zip(state.parents.material_id, state.parents.structure):
            if len(structure) > 1:
                candidates.append(
                    Candidate(
                        structure.copy().remove_sites([len(structure) - 1]), "substitution", parent_id=material_id
                    )
                )
        self.made += candidates
        return Generated(candidates, SkipLog())


def test_each_stage_can_be_swapped_without_editing_the_library(mirror, tmp_path):
    """A user's generator, the random filter and CHGNet as a plain ASE calculator object run the loop; the
    calculator's labels are the named oracle's to round-off (same level: the reference is relabelled by name)."""
    from chgnet.model.dynamics import CHGNetCalculator

    from matdisco.oracle import load_chgnet, run_oracle_batch, structure_hash

    config = replace(CFG, rounds=1, budget=2, control_budget=1, n_parents=3, max_steps=20)
    calculator = CHGNetCalculator(model=load_chgnet("0.3.0"), use_device="cpu")
    generator = ParentsLessOneSite()
    stages = {"generator": generator, "filter": RandomFilter(), "compositional": False, "oracle": calculator}
    table = run_discovery(config, tmp_path, **stages)
    work = discovery_dir(config, tmp_path)
    evaluated = pd.read_csv(work / "round_0" / "evaluated.csv")
    assert table.generated.iloc[0] == len(generator.made) > 0 and table.airss_structures.iloc[0] == 0
    assert table.pool.iloc[0] > 0 and table.filtered.iloc[0] == min(config.budget, table.pool.iloc[0])
    assert evaluated.pred_e_form.isna().all()  # the random filter predicts nothing
    assert len(evaluated) == table.evaluated.iloc[0] and (evaluated.generator == "substitution").all()
    mine = OracleStore(work / "oracle.sqlite").table(config.oracle).set_index("structure_hash")
    assert len(mine) == len(evaluated)
    picked = [c.structure for c in generator.made if structure_hash(c.structure) in mine.index]
    named = run_oracle_batch(
        picked,
        OracleStore(tmp_path / "named.sqlite"),
        oracle=config.oracle,
        fmax=config.fmax,
        max_steps=config.max_steps,
        scheduler=None,
        progress=False,
    ).set_index("structure_hash")
    assert len(named) == len(mine)
    np.testing.assert_allclose(named.energy_per_atom, mine.energy_per_atom.reindex(named.index), atol=1e-6)
    with pytest.raises(ValueError, match="not at the run's level"):
        run_discovery(config, tmp_path, oracle=NamedOracle("sevennet-0"))

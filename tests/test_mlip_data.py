"""matdisco.mlip_data: oracle-labelled OMat24-style frames with provenance, per-source resume, composition split."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from matdisco.data import DataError
from matdisco.mlip_data import (
    SamplingConfig,
    bond_coverage,
    build_frames,
    composition_split,
    elements_covered,
    frame_split,
    frames_dir,
    frames_table,
    load_frames,
    pair_coverage,
    rattle_sigma,
    transfer_frames,
)


@pytest.fixture(scope="module")
def oracle():
    from matdisco.oracle import make_calculator

    return make_calculator("chgnet-0.3.0")


def test_frames_are_labelled_by_the_oracle_with_provenance(tmp_path, oracle):
    cfg = SamplingConfig(rattles_per_temperature=1, strains=1, md_steps=10, md_every=5)
    sources = {"nacl": bulk("NaCl", "rocksalt", a=5.69), "mgo": bulk("MgO", "rocksalt", a=4.26)}
    frames = load_frames(build_frames(sources, tmp_path, cfg, calculator=oracle, progress=False))
    t = frames_table(frames)
    assert set(t.source) == {"nacl", "mgo"} and set(t.formula) == {"NaCl", "MgO"}
    # every frame's stored labels are the oracle's at that geometry
    for a in frames[::3]:
        b = a.copy()
        b.calc = oracle
        assert np.isclose(b.get_potential_energy(), a.get_potential_energy(), atol=1e-4)
        assert np.allclose(b.get_forces(), a.get_forces(), atol=1e-4)
    # rattled at 1,000 K: σ = 0.093 Å; the crystals' own forces vanish by symmetry, the rattled ones do not
    assert t[t.kind == "rattled"].max_force.min() > 0.1
    # another sampling config is another frame set; the same config reuses the folder and samples nothing new
    assert frames_dir(tmp_path, cfg) != frames_dir(tmp_path, SamplingConfig(strains=2))
    before = {p.name: p.stat().st_mtime_ns for p in frames_dir(tmp_path, cfg).glob("*.extxyz")}
    build_frames(sources, tmp_path, cfg, calculator=None, progress=False)  # no calculator needed: nothing to do
    assert before == {p.name: p.stat().st_mtime_ns for p in frames_dir(tmp_path, cfg).glob("*.extxyz")}


def test_duplicates_are_dropped_and_bad_files_named(tmp_path, oracle):
    cfg = SamplingConfig(rattles_per_temperature=1, strains=1, md_steps=0)
    folder = build_frames({"a": bulk("Si", "diamond", a=5.47)}, tmp_path, cfg, calculator=oracle, progress=False)
    (folder / "b.extxyz").write_bytes((folder / "a.extxyz").read_bytes())  # the same frames under another source file
    assert len(load_frames(folder)) == len(load_frames(folder, dedup=False)) // 2
    (folder / "c.extxyz").write_text("3\nnonsense\n")
    with pytest.raises(DataError, match="c.extxyz"):
        load_frames(folder)


def test_composition_split_never_shares_a_composition():
    formulas = [f"Li{i}O" for i in range(1, 60)] * 3
    split = composition_split(formulas, test_fraction=0.25, seed=1)
    train = {f for f, s in zip(formulas, split) if s == "train"}
    test = {f for f, s in zip(formulas, split) if s == "test"}
    assert train and test and not train & test
    assert 0.1 < len(test) / (len(test) + len(train)) < 0.4
    # the zero-shot MD reference's compositions are never training data, however the draw falls; the rest is unchanged
    forced = sorted(train)[:3]
    held = composition_split(formulas, test_fraction=0.25, seed=1, hold_out=forced)
    assert {f for f, s in zip(formulas, held) if s == "test"} == test | set(forced)


def test_elemental_phases_stay_in_training_and_their_bonding_counts_as_a_pair():
    """A held-out elemental phase is new chemistry: molecular N2 (N-N triple bonds) is unlike any nitride. On the cpu
    split, held-out N2 alone raised the held-out force MAE from 0.59x to 0.71x zero force, and it counted as
    'all pairs seen' because a unary had no pairs."""
    compounds = [f"Li{i}N" for i in range(1, 40)]
    formulas = [*compounds, "N2", "Li", "Ca"] * 2
    split = composition_split(formulas, test_fraction=0.99, seed=0)
    sides = dict(zip(formulas, split))
    assert {sides["N2"], sides["Li"], sides["Ca"]} == {"train"}
    assert sum(sides[f] == "test" for f in compounds) > 30  # the compounds still follow the draw
    # the zero-shot MD reference's compositions are held out, elemental or not
    assert dict(zip(formulas, composition_split(formulas, test_fraction=0.99, hold_out=["N2"])))["N2"] == "test"
    coverage = pair_coverage(["N2"], ["Li3N", "LiN3"]).pair_coverage.tolist()
    assert coverage == [0.0]  # nitrides hold no N-N pair of their own
    assert pair_coverage(["N2", "Li3N"], ["N2", "Li"]).set_index("formula").pair_coverage.to_dict() == {
        "Li3N": 0.0,
        "N2": 1.0,
    }


def test_bond_coverage_sees_a_peroxide_bond_that_composition_pairs_miss():
    """Li and O share Li2O, so a peroxide's composition pairs are all 'seen'; its O-O bond (1.5 Å) is in no oxide."""
    oxide = bulk("Li2O", "fluorite", a=4.61)
    peroxide = Atoms("O2Li", positions=[[0, 0, 0], [1.5, 0, 0], [0.75, 1.9, 0]], cell=[6.0, 6.0, 6.0], pbc=True)
    rattled = peroxide.copy()
    oxide.info.update(kind="relaxation", formula="Li2O")
    peroxide.info.update(kind="relaxation", formula="LiO2")
    rattled.info.update(kind="rattled", formula="Li3O")
    assert pair_coverage(["LiO2"], ["Li2O"]).pair_coverage.tolist() == [1.0]
    table = bond_coverage([peroxide, rattled], [oxide]).set_index("formula")
    assert table.loc["LiO2"].unseen_bonded_pairs == "O-O" and table.loc["LiO2"].bond_coverage == 0.5
    assert np.isnan(table.loc["Li3O"].bond_coverage)  # contacts are judged on relaxation frames only
    assert bond_coverage([peroxide], [oxide, peroxide]).bond_coverage.tolist() == [1.0]


def test_rattle_width_follows_equipartition():
    assert np.isclose(rattle_sigma(1000.0) / rattle_sigma(250.0), 2.0)
    assert list(elements_covered([bulk("Cu")], [bulk("Cu"), bulk("Al")])) == [True]


def _sources():
    return {
        "li2o": bulk("Li2O", "fluorite", a=4.61),
        "lif": bulk("LiF", "rocksalt", a=4.03),
        "licl": bulk("LiCl", "rocksalt", a=5.13),
        "naf": bulk("NaF", "rocksalt", a=4.63),
        "nacl": bulk("NaCl", "rocksalt", a=5.69),
    }


def test_the_scored_frames_are_unseen_compositions_whose_elements_training_saw(tmp_path, oracle):
    """`frame_split`: training, validation (checkpoint choice) and scored frames never share a composition, and a
    held-out composition with an element training never saw is counted, not scored."""
    cfg = SamplingConfig(rattles_per_temperature=2, strains=1, md_steps=0)
    frames = load_frames(build_frames(_sources(), tmp_path, cfg, calculator=oracle, progress=False))
    held_out = {"LiCl", "NaF"}  # Cl occurs only in NaCl, F only in LiF: covered unless that one is set apart
    split = ["test" if a.info["formula"] in held_out else "train" for a in frames]
    for seed in range(4):
        s = frame_split(frames, split, val_fraction=0.25, seed=seed)
        formulas = [{a.info["formula"] for a in part} for part in (s.train, s.val, s.test)]
        assert not formulas[0] & formulas[2] and not formulas[1] & formulas[2]
        assert formulas[1] and not formulas[1] & formulas[2] and formulas[2] <= held_out
        if formulas[0] & formulas[1]:  # the validation draw fell on held-out compositions only
            assert s.val == s.train[:4]  # then the first training frames stand in
        else:
            assert len(s.train) + len(s.val) + len(s.test) + s.n_test_uncovered == len(frames)  # nothing lost
        assert all(elements_covered(s.test, s.train))


def test_the_new_chemistry_gets_hotter_frames_on_the_side_of_their_source(tmp_path, oracle):
    """`transfer_frames`: the held-out frames split in halves by composition, each half with the frames of its own
    sources sampled hotter than any pretraining frame (GNoME Fig. 3c); a temperature that is not hotter is refused."""
    sources = _sources()
    cfg = SamplingConfig(rattles_per_temperature=1, strains=0, md_steps=0)
    held_out = load_frames(build_frames(sources, tmp_path, cfg, calculator=oracle, progress=False))
    with pytest.raises(ValueError, match="not hotter"):
        transfer_frames(held_out, sources, tmp_path, cfg, [900.0])
    new = transfer_frames(held_out, sources, tmp_path, cfg, [1500.0], seed=1)
    hot = [a for a in new.train + new.test if a.info["temperature_K"] == 1500.0]
    assert new.n_hot == len(hot) == len(sources)  # one rattle per source at 1,500 K, no MD
    train_formulas = {a.info["formula"] for a in new.train}
    test_formulas = {a.info["formula"] for a in new.test}
    assert train_formulas and test_formulas and not train_formulas & test_formulas
    assert len(new.train) + len(new.test) == len(held_out) + len(hot)


def test_a_one_atom_cell_keeps_its_rattled_and_strained_frames_and_has_no_md(tmp_path, oracle):
    """A primitive elemental crystal has one atom: MD has nothing to move (ASE's Langevin divides by N - 1 there), so
    it gets no MD frames, but its strained frames (stress labels) and rattled frames are kept. Before, the whole
    source was skipped with a ZeroDivisionError: 7 elemental crystals of the cpu profile's 200 sources."""
    cfg = SamplingConfig(rattles_per_temperature=1, strains=2, md_steps=10, md_every=5)
    sources = {"al": bulk("Al", "fcc", a=4.04), "nacl": bulk("NaCl", "rocksalt", a=5.69)}
    assert len(sources["al"]) == 1
    t = frames_table(load_frames(build_frames(sources, tmp_path, cfg, calculator=oracle, progress=False)))
    al = t[t.source == "al"]
    assert set(al.kind) == {"rattled", "strained"} and (al.kind == "strained").sum() == 2
    assert set(t[t.source == "nacl"].kind) == {"rattled", "strained", "md"}

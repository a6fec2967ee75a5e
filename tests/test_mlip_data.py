"""matdisco.mlip_data: oracle-labelled OMat24-style frames with provenance, per-source resume, composition split."""

import numpy as np
import pytest
from ase.build import bulk

from matdisco.data import DataError
from matdisco.mlip_data import (
    SamplingConfig,
    build_frames,
    composition_split,
    elements_covered,
    frames_dir,
    frames_table,
    load_frames,
    rattle_sigma,
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


def test_rattle_width_follows_equipartition():
    assert np.isclose(rattle_sigma(1000.0) / rattle_sigma(250.0), 2.0)
    assert list(elements_covered([bulk("Cu")], [bulk("Cu"), bulk("Al")])) == [True]

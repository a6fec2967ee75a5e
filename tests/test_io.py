"""matdisco.io: every reader keeps each structure's name, and a bad file is skipped with its reason, never fatal."""

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from matdisco.io import MIN_INTERATOMIC_DISTANCE, read_structures, structure_problem

NACL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def bad_cifs() -> dict[str, str]:
    "CIF texts, each broken in one way a generator's output is, with the start of the reason expected for it."
    good = NACL.to(fmt="cif")
    return {
        "empty.cif": ("", "empty file"),
        "truncated.cif": (good[:200], "unreadable: no atom-site coordinates"),
        "unknown_element.cif": (good.replace("Na  Na0", "Xx  Xx0"), "unknown element"),
        "nan.cif": (good.replace("Cl1  1  0.50000000", "Cl1  1  nan"), "unreadable: non-finite"),
        "partial.cif": (
            Structure(Lattice.cubic(5.64), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif"),
            "partial occupancy",
        ),
        "overlapping.cif": (
            Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]]).to(fmt="cif"),
            f"atoms closer than {MIN_INTERATOMIC_DISTANCE}",
        ),
    }


def test_cif_folder_keeps_good_files_and_names_each_bad_one_with_its_reason(tmp_path):
    (tmp_path / "good.cif").write_text(NACL.to(fmt="cif"))
    (tmp_path / "good2.cif").write_text((NACL * (2, 1, 1)).to(fmt="cif"))
    for name, (text, _) in bad_cifs().items():
        (tmp_path / name).write_text(text)
    got = read_structures(tmp_path)
    assert got.ids == ["good.cif", "good2.cif"] and len(got) == 2 and len(got.structures[1]) == 4
    reasons = dict(zip(got.skipped.id, got.skipped.reason))
    assert set(reasons) == set(bad_cifs())
    for name, (_, expected) in bad_cifs().items():
        assert reasons[name].startswith(expected), (name, reasons[name])
    s = got.summary()
    assert s["read"] == 2 and s["skipped"] == 6 and sum(s["skipped_by_reason"].values()) == 6


def test_csv_with_a_cif_column_keeps_row_ids(tmp_path):
    rows = pd.DataFrame({"material_id": ["a", "b", "c"], "cif": [NACL.to(fmt="cif"), "", (NACL * 2).to(fmt="cif")]})
    rows.to_csv(tmp_path / "sample.csv", index=False)
    got = read_structures(tmp_path / "sample.csv")
    assert got.ids == ["a", "c"] and list(got.skipped.id) == ["b"] and got.skipped.reason[0] == "empty file"
    with pytest.raises(ValueError, match="no CIF column"):
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / "nocif.csv", index=False)
        read_structures(tmp_path / "nocif.csv")


def test_extxyz_reads_frames_and_keeps_those_before_a_truncation(tmp_path):
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = [AseAtomsAdaptor.get_atoms(NACL * k) for k in (1, 2, 3)]
    frames[1].info["material_id"] = "double"
    molecule = AseAtomsAdaptor.get_atoms(NACL)
    molecule.pbc = False
    write(tmp_path / "all.extxyz", frames + [molecule], format="extxyz")
    got = read_structures(tmp_path / "all.extxyz")
    assert got.ids == ["all.extxyz:0", "double", "all.extxyz:2"] and [len(s) for s in got.structures] == [2, 16, 54]
    assert list(got.skipped.reason) == ["not periodic in all three directions"]
    text = (tmp_path / "all.extxyz").read_text().splitlines()
    (tmp_path / "cut.extxyz").write_text("\n".join(text[: 2 + 2 + 2 + 5]) + "\n")  # frame 0, and frame 1 cut short
    cut = read_structures(tmp_path / "cut.extxyz")
    assert (
        cut.ids == ["all.extxyz:0".replace("all", "cut")]
        and cut.skipped.reason.str.startswith("unreadable from frame 1").all()
    )


def test_structure_problem_accepts_real_crystals(mirror):
    from matdisco.data import load_structures

    frame = load_structures(list(range(50)), progress=False).frame
    assert all(structure_problem(s) is None for s in frame.structure)
    assert structure_problem(Structure(Lattice.cubic(3), [], [])) == "no sites"
    bad = NACL.copy()
    bad.lattice = Lattice(np.full((3, 3), np.nan))
    assert structure_problem(bad).startswith("non-finite")


def test_a_missing_path_or_unknown_kind_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_structures(tmp_path / "nothing")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown kind of file"):
        read_structures(tmp_path / "x.json")


def test_a_cif_cut_short_anywhere_is_skipped_with_words_a_user_understands(tmp_path):
    "A CIF truncated at any point before its atoms are complete is named with a reason, never a Python exception."
    from matdisco.data import parse_cif

    text = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        fmt="cif"
    )
    atoms_complete = text.index("Na0") + 10
    cuts = list(range(10, atoms_complete, 3))
    for k in cuts:
        (tmp_path / f"cut{k:04d}.cif").write_text(text[:k])
    got = read_structures(tmp_path)
    assert len(got.structures) == 0 and len(got.skipped) == len(cuts)
    python_words = ("Error", "modulo", "zip()", "len(items)")
    assert not [r for r in got.skipped.reason if any(w in r for w in python_words)]
    assert any("truncated" in r for r in got.skipped.reason)
    for k in cuts:
        structure, reason = parse_cif(text[:k], source=f"cut{k}.cif")
        assert structure is None and reason.startswith(f"cut{k}.cif: ") and not any(w in reason for w in python_words)

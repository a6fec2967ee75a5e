"""matdisco.data: registry, checksummed fetching, bad rows, outliers, splits (on the real mp2018_formation)."""

import io
import subprocess
import sys
import tarfile
from dataclasses import replace

import pandas as pd
import pytest

from matdisco import data as D
from matdisco.data import DataError, fetch, load_structures, read_index
from matdisco.core import sha256_file

ROOT = D.project_root()


def test_registry_covers_the_mirror(mirror):
    "Every file in the mirror's README checksum list is registered with the same sha256."
    readme = (mirror / "README.md").read_text()
    listed = {
        line.split()[1]: line.split()[0]
        for line in readme.splitlines()
        if len(line.split()) == 2 and len(line.split()[0]) == 64
    }
    registered = {f"{d.name}/{f.name}": f.sha256 for d in D.REGISTRY.values() for f in d.files}
    for path, sha in listed.items():
        if path.endswith("id_prop_megnet_6col.csv"):
            continue  # undocumented upstream columns: deliberately not registered
        assert registered.get(path) == sha, path
    for name in (
        "mp2018_formation",
        "mp_formation_compositions",
        "mp_elemental_refs",
        "perov_5",
        "mp_20",
        "obelix",
        "known_compositions",
    ):
        ds = D.REGISTRY[name]
        assert ds.source and ds.licence and ds.citation and ds.version and ds.columns
        assert all(f.url.startswith("https://") for f in ds.files)
    derived = D.REGISTRY["elemental_structures"]  # built from the ase and pymatgen wheels: no public download
    assert derived.source and derived.licence and all(f.url is None and f.sha256 for f in derived.files)


def test_nested_and_mirror_only_files_fetch_offline(mirror, tmp_path):
    paths = fetch("known_compositions", dest=tmp_path, online=False)
    assert paths["sources/crabnet/matbench_mp_e_form.csv"].parent == tmp_path / "known_compositions/sources/crabnet"
    assert len(paths) == len(D.REGISTRY["known_compositions"].files) == 21
    assert fetch("elemental_structures", dest=tmp_path, online=False)["elemental_reference_candidates.json"].exists()
    with pytest.raises(
        DataError, match="elemental_structures/elemental_reference_candidates.json: .*no public download"
    ):
        fetch("elemental_structures", mirror=tmp_path / "nowhere", dest=tmp_path / "empty", online=True)


def test_fetch_offline_from_mirror(mirror, tmp_path):
    paths = fetch("mp2018_formation", dest=tmp_path, online=False)
    for name, p in paths.items():
        assert p.parent == tmp_path / "mp2018_formation"
        assert sha256_file(p) == D.REGISTRY["mp2018_formation"].file(name).sha256


def _fake_mirror(tmp_path, mirror, corrupt: str):
    fake = tmp_path / "mirror"
    for f in D.REGISTRY["mp2018_formation"].files:
        dst = fake / "mp2018_formation" / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(b"0,1.0\n" if f.name == corrupt else (mirror / "mp2018_formation" / f.name).read_bytes())
    return fake


def test_fetch_checksum_mismatch_is_a_clear_error(mirror, tmp_path):
    fake = _fake_mirror(tmp_path, mirror, corrupt="id_prop.csv")
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"mp2018_formation/id_prop\.csv: checksum mismatch .*expected sha256 73339f7c"):
        fetch("mp2018_formation", mirror=fake, dest=dest, online=False)
    assert not (dest / "mp2018_formation" / "id_prop.csv").exists()  # nothing unverified left behind
    assert not list((dest / "mp2018_formation").glob(".*tmp"))


def test_fetch_missing_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot fetch mp_elemental_refs/.*no local mirror"):
        fetch("mp_elemental_refs", mirror=None, dest=tmp_path, online=False)
    with pytest.raises(DataError, match="not in mirror"):
        fetch("mp_elemental_refs", mirror=tmp_path / "nowhere", dest=tmp_path, online=False)
    with pytest.raises(DataError, match="unknown data set 'nope'"):
        fetch("nope")


def test_local_copy_is_reverified(mirror, tmp_path):
    fetch("mp_elemental_refs", dest=tmp_path, online=False)
    p = tmp_path / "mp_elemental_refs" / "2023-02-07-mp-elemental-reference-entries.json.gz"
    p.write_bytes(p.read_bytes()[:-10])  # truncated download
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch("mp_elemental_refs", dest=tmp_path, online=False)


def test_online_path_downloads_and_verifies(tmp_path, mirror, monkeypatch):
    "The download path (file:// URL standing in for https) is verified like the mirror path."
    src = mirror / "mp_elemental_refs" / "2023-02-07-mp-elemental-reference-entries.json.gz"
    ds = D.REGISTRY["mp_elemental_refs"]
    monkeypatch.setitem(D.REGISTRY, "mp_elemental_refs", replace(ds, files=(replace(ds.files[0], url=src.as_uri()),)))
    paths = fetch("mp_elemental_refs", mirror=None, dest=tmp_path)
    assert sha256_file(paths[ds.files[0].name]) == ds.files[0].sha256


def test_upstream_archive_is_repacked_and_content_verified(tmp_path, mirror, monkeypatch):
    "cifs.tar.gz assembled from a GitHub-style repository archive matches the mirror by content checksum."
    upstream = tmp_path / "crysxpp-b12e52b.tar.gz"
    with tarfile.open(mirror / "mp2018_formation" / "cifs.tar.gz") as src, tarfile.open(upstream, "w:gz") as out:
        for m in src:
            if not m.isfile():
                continue
            data = src.extractfile(m).read()
            ti = tarfile.TarInfo("crysxpp-b12e52b/" + m.name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
        readme = tarfile.TarInfo("crysxpp-b12e52b/README.md")
        readme.size = 2
        out.addfile(readme, io.BytesIO(b"hi"))
    ds = D.REGISTRY["mp2018_formation"]
    files = tuple(replace(f, url=upstream.as_uri()) if f.name == "cifs.tar.gz" else f for f in ds.files)
    monkeypatch.setitem(D.REGISTRY, "mp2018_formation", replace(ds, files=files))
    dest = tmp_path / "data"
    for f in ds.files:  # the small CSVs from the mirror, the tarball from "upstream"
        if f.name != "cifs.tar.gz":
            (dest / "mp2018_formation").mkdir(parents=True, exist_ok=True)
            (dest / "mp2018_formation" / f.name).write_bytes((mirror / "mp2018_formation" / f.name).read_bytes())
    paths = fetch("mp2018_formation", mirror=None, dest=dest)
    assert D.tar_content_sha256(paths["cifs.tar.gz"]) == ds.file("cifs.tar.gz").content_sha256


def test_cli_fetch_offline_and_errors(mirror, tmp_path):
    env = {"MATDISCO_DATA": str(tmp_path), "PATH": "/usr/bin:/bin", "MATDISCO_MIRROR": str(mirror)}
    cli = [sys.executable, "-m", "matdisco.cli"]
    ok = subprocess.run(
        cli + ["data", "fetch", "mp2018_formation", "--offline"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "mp2018_formation/cifs.tar.gz: ok" in ok.stdout
    env["MATDISCO_MIRROR"] = str(tmp_path / "missing")
    env["MATDISCO_DATA"] = str(tmp_path / "empty")
    bad = subprocess.run(cli + ["data", "fetch", "perov_5", "--offline"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("matdisco: error: cannot fetch perov_5/val.csv") and "Traceback" not in bad.stderr
    listing = subprocess.run(
        cli + ["data", "list"], env={**env, "MATDISCO_MIRROR": str(mirror)}, capture_output=True, text=True
    )
    assert listing.returncode == 0 and "mp2018_formation" in listing.stdout and "mp_20" in listing.stdout


# ---- bad rows on a hand-made data set with the real loader -------------------------------------------------

GOOD = """data_X
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
_chemical_formula_sum '{a}1 Cl1'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  {a} {a}0 0.0 0.0 0.0 {occ}
  Cl Cl1 0.5 0.5 0.5 1
"""


@pytest.fixture
def bad_dataset(tmp_path, monkeypatch):
    cifs = {
        0: GOOD.format(a="Na", occ=1),
        1: "data_broken\n_cell_length_a 4\nnonsense here\n",
        2: GOOD.format(a="Na", occ=0.5),
        3: GOOD.format(a="Qx", occ=1),
        4: GOOD.format(a="K", occ=1),
        5: GOOD.format(a="Rb", occ=1),
    }
    folder = tmp_path / "mirror" / "mp2018_formation"
    folder.mkdir(parents=True)
    (folder / "id_prop.csv").write_text("0,-2.0\n1,-1.0\n2,-1.0\n3,-1.0\n4,nan\n5,-9.0\n")
    (folder / "material_id_hash.csv").write_text("".join(f"{i},mp-{i}\n" for i in range(6)))
    with tarfile.open(folder / "cifs.tar.gz", "w:gz") as tf:
        for i, text in cifs.items():
            ti = tarfile.TarInfo(f"data/{i}.cif")
            b = text.encode()
            ti.size = len(b)
            tf.addfile(ti, io.BytesIO(b))
    ds = D.REGISTRY["mp2018_formation"]
    files = tuple(replace(f, sha256=sha256_file(folder / f.name), content_sha256=None) for f in ds.files)
    monkeypatch.setitem(D.REGISTRY, "mp2018_formation", replace(ds, files=files))
    monkeypatch.setenv("MATDISCO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MATDISCO_MIRROR", str(tmp_path / "mirror"))
    return tmp_path


def test_bad_rows_are_reported_with_file_row_and_reason(bad_dataset):
    t = load_structures(progress=False, n_jobs=1)
    assert t.frame.row_index.tolist() == [0]
    reasons = dict(zip(t.bad_rows.row_index, t.bad_rows.reason))
    assert reasons[1].startswith(("unparsable CIF", "invalid CIF"))
    assert reasons[2].startswith("partial occupancy")
    assert reasons[3].startswith(("unknown element", "unparsable CIF"))
    assert reasons[4] == "target formation_energy_per_atom is nan"
    assert reasons[5].startswith("outlier: formation energy -9.000")
    assert set(t.bad_rows.file) >= {"cifs.tar.gz:data/1.cif", "cifs.tar.gz:data/5.cif"}
    kept = load_structures(progress=False, n_jobs=1, keep_outliers=True)
    assert kept.frame.set_index("row_index").loc[5, "is_outlier"]
    with pytest.raises(DataError, match=r"first: row 1 \(mp-1, cifs.tar.gz:data/1.cif\): (unparsable|invalid) CIF"):
        load_structures(progress=False, strict=True)


# ---- the real data ---------------------------------------------------------------------------------------


def test_outliers_are_the_six_known_rows(mp_index):
    assert len(mp_index) == 36_737
    flagged = mp_index[mp_index.is_outlier]
    assert sorted(flagged.row_index) == [563, 22713, 22775, 22808, 29864, 30571]
    assert flagged.set_index("row_index").loc[30571, "material_id"] == "mp-778012"
    lo, hi = D.FORMATION_ENERGY_BOUNDS
    ok = mp_index[~mp_index.is_outlier].formation_energy_per_atom
    assert lo <= ok.min() and ok.max() <= hi


def test_real_structures_match_their_index(mirror, mp_index):
    rows = [0, 1, 2, 31723, 25542]
    t = load_structures(rows, progress=False)
    assert t.frame.row_index.tolist() == rows and len(t.bad_rows) == 0
    for rec in t.frame.itertuples():
        assert rec.structure.composition.reduced_formula == rec.reduced_formula
        assert rec.structure.is_ordered
    assert t.frame.set_index("material_id").loc["mp-841", "reduced_formula"] == "Li2O2"
    assert set(t.checksums) == {"id_prop.csv", "material_id_hash.csv", "cifs.tar.gz"}
    with pytest.raises(DataError, match="rows not in the data set"):
        load_structures([10**6], progress=False)


def test_fixed_split_is_80_10_10_disjoint_and_frozen(mp_index):
    sp = D.split_random(mp_index)
    sizes = {k: len(v) for k, v in sp.items()}
    assert sizes == {"train": 29385, "val": 3673, "test": 3673}  # 36,731 usable rows
    assert not (set(sp["train"]) & set(sp["test"])) and not (set(sp["val"]) & set(sp["test"]))
    # frozen: a change here silently changes every reported test MAE
    assert sp["test"][:8].tolist() == [21, 22, 37, 39, 43, 50, 59, 64]
    assert not set(sp["test"]) & {563, 22713, 22775, 22808, 29864, 30571}


def test_chemsys_and_arity_splits(mp_index):
    sc = D.split_by_chemsys(mp_index, seed=1)
    by_row = mp_index.set_index("row_index").chemsys
    assert not set(by_row[sc["train"]]) & set(by_row[sc["test"]])
    assert 0.05 < len(sc["test"]) / sum(map(len, sc.values())) < 0.2
    sn = D.split_by_n_elements(mp_index, max_train_elements=4)
    n_el = mp_index.set_index("row_index").n_elements
    assert n_el[sn["train"]].max() <= 4 and n_el[sn["test"]].min() == 5
    assert D.split_by_chemsys(mp_index, seed=1)["test"].tolist() == sc["test"].tolist()


def test_other_registered_sets_load(mirror):
    comps = D.load_mp_formation_compositions()
    assert len(comps) == 84_295 and "NaN" in set(comps.composition)  # sodium nitride, not missing
    refs = D.load_mp_elemental_refs()
    assert len(refs) == 89 and refs["O"].composition.reduced_formula == "O2"
    perov = D.load_perov5("val")
    assert len(perov) + len(perov.bad_rows) == 3787 and len(perov) > 3700


def test_bad_cif_messages_name_the_file_and_the_reason():
    "A truncated CIF, a NaN coordinate and a NaN cell length each get one clear message naming the file."
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter
    from matdisco.data import parse_cif

    text = str(CifWriter(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])))
    assert parse_cif(text, source="nacl.cif")[1] is None
    s, why = parse_cif(text[:-30], source="nacl.cif")
    assert s is None and why.startswith("nacl.cif: invalid CIF (truncated or malformed loop") and "zip()" not in why
    lines = text.rstrip().split("\n")
    last = lines[-1].split()
    last[3] = "NaN"
    s, why = parse_cif("\n".join(lines[:-1] + [" ".join(last)]), source="nan.cif")
    assert s is None and why == "nan.cif: invalid CIF (data_NaCl: _atom_site_fract_x has a non-numeric value 'NaN')"
    s, why = parse_cif(text.replace("_cell_length_a   4.00000000", "_cell_length_a   nan"), source="cell.cif")
    assert s is None and "_cell_length_a = 'nan' is not a positive number" in why and why.startswith("cell.cif: ")
    assert parse_cif("", source="empty.cif") == (None, "empty.cif: invalid CIF (empty file)")


def test_obelix_loads_measured_conductivities_and_keeps_disorder(mirror):
    from matdisco.data import load_obelix

    ob = load_obelix()
    f = ob.frame
    assert len(f) == 599 and int(f.sigma_S_cm.notna().sum()) == 562
    # text measurements ('<1E-10') are not numbers made up: NaN, with the text kept
    text_only = f[f.sigma_S_cm.isna()]
    assert len(text_only) == 37 and text_only.sigma_text.str.len().gt(0).all()
    # 321 CIFs: 72 ordered, the rest partially occupied (kept, for ordered approximants), none dropped
    with_cif = f.dropna(subset=["structure"])
    assert len(with_cif) == 321 and int(with_cif.is_ordered.sum()) == 72 and len(ob.bad_rows) == 0
    assert {"all.csv", "all_cifs.tar.gz"} <= set(ob.checksums)


# Compounds the Roost leakage filter removed from mp_formation_compositions (issue #24): halides, chalcogenides,
# a rare-earth monosulfide; LiCoO2 as a control that every list holds
_FILTERED_UPSTREAM = ("HgCl2", "ZnI2", "CdBr2", "WSe2", "CdCl2", "SnI4", "MoSe2", "PtS2", "SmS", "BiI3")


def test_known_compositions_hold_the_compounds_the_old_list_lost(mirror):
    from pymatgen.core import Composition
    from matdisco.reference import known_reduced_formulas

    old = {Composition(c).reduced_formula for c in D.load_mp_formation_compositions().composition}
    known = known_reduced_formulas()
    assert not set(_FILTERED_UPSTREAM) & old  # the bias the merge repairs
    assert set(_FILTERED_UPSTREAM) | {"LiCoO2", "NaN", "Li2O"} <= known
    assert old <= known


def test_known_compositions_match_the_mirrors_merge_and_exclude_hypotheticals(mirror):
    "The merge reproduces the mirror's derived one (MP lists exactly; measured sets less non-stoichiometric alloys)."
    from pymatgen.core import Composition

    ours = D.load_known_compositions()
    theirs = pd.read_csv(mirror / "known_compositions" / "derived_known_compositions.csv.gz", keep_default_na=False)
    theirs = theirs[theirs.reduced_formula.ne("")]  # its sodium nitride row lost its name ('NaN') on writing
    ours_mp = set(ours.reduced_formula[ours.known_mp]) - {"NaN"}
    assert ours_mp == set(theirs.reduced_formula[theirs.known_mp.eq(1)])
    theirs_exp = set(theirs.reduced_formula[theirs.known_experimental.eq(1)])
    ours_exp = set(ours.reduced_formula[ours.known_experimental]) - {"NaN"}
    assert ours_exp <= theirs_exp
    alloys = theirs_exp - ours_exp
    assert all(any(not float(x).is_integer() for x in Composition(f).values()) for f in alloys)
    hypothetical = ours[(ours.in_oqmd_partial | ours.in_aflow_partial) & ~ours.known_mp & ~ours.known_experimental]
    assert len(hypothetical) > 10_000 and not hypothetical.known.any()


def test_elemental_structures_cover_the_elements_mp2018_lacks(mirror):
    elemental = D.load_elemental_structures()
    lacking = {"F", "S", "Se", "Br", "I", "H", "Ce", "Eu", "Rh"}
    assert set(elemental.element) == lacking
    assert not lacking & set(read_index().chemsys.dropna())  # none of them has an mp2018 elemental crystal
    for row in elemental.itertuples():
        assert {el.symbol for el in row.structure.composition.elements} == {row.element}
        assert len(row.structure) == row.n_sites and row.mu_mp2020 < 0
    assert (elemental.element == "S").sum() == 2 and elemental.label.str.startswith("S Fddd").any()  # alpha-S8

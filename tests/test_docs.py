"""matdisco.docs: the site builds offline from the notebooks, every link and image resolves, a browser renders it."""

import shutil

import pytest

from matdisco.core import project_root
from matdisco.docs import browser_screenshots, build_docs, check_site, chromium_binary, library_notebooks, stage_docs
from matdisco.results import reference_results_dirs
from matdisco.registry import EXPERIMENTS

ROOT = project_root()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    source = stage_docs(tmp / "source", results_paths=reference_results_dirs(ROOT))
    return build_docs(source, tmp / "html")


def test_the_site_has_every_notebook_and_nothing_broken(site):
    index = (site / "index.html").read_text()
    assert "Two commands" in index and "What you get" in index  # the front page is nbs/index.ipynb
    assert "<table" in index and "this work" in index and "| experiment |" not in index  # rendered, not raw text
    for nb in library_notebooks(ROOT):
        assert (site / "methods" / f"{nb.stem}.html").exists(), nb.name
    for exp in EXPERIMENTS:
        assert (site / "experiments" / exp.notebook.replace(".ipynb", ".html")).exists(), exp.notebook
    results_page = (site / "results.html").read_text()
    assert "Reference figures" in results_page and results_page.count("<img") == len(
        list((ROOT / "figures").glob("*.png"))
    )
    assert check_site(site) == []


def test_the_checker_finds_a_broken_image_and_a_broken_link(site, tmp_path):
    copy = shutil.copytree(site, tmp_path / "html")
    image = next((copy / "_images").glob("*.png"))
    image.write_bytes(b"not a png")
    (copy / "results.html").write_text((copy / "results.html").read_text() + '<a href="missing/page.html">x</a>')
    problems = check_site(copy)
    assert any(image.name in p and "does not decode" in p for p in problems)
    assert any("results.html: broken a missing/page.html" == p for p in problems)


@pytest.mark.skipif(chromium_binary() is None, reason="no headless browser (apt install chromium)")
def test_a_headless_browser_renders_the_front_page_and_a_chapter(site, tmp_path):
    from PIL import Image

    shots = browser_screenshots(site, ["index.html", "methods/07_discovery.html"], tmp_path)
    for shot in shots:
        with Image.open(shot) as im:
            assert im.size == (1280, 1600)
            assert len(set(im.convert("L").resize((64, 80)).getdata())) > 8  # text and layout, not a blank page

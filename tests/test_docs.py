"""The manual (``docs/``, ``mkdocs.yml``) builds in strict mode, its sample outputs are what their
commands print today, every metric is in its names table, and the README stays a front door."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yokedcache.telemetry import semconv as sc

from . import docs_samples
from .redis_server import in_ci

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None and not in_ci():
        pytest.skip("mkdocs not installed: pip install -e '.[docs]' (make test does)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip


def test_the_manual_builds_in_strict_mode(tmp_path):
    built = mkdocs_build(ROOT, tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    # mkdocstrings rendered the docstrings (not a hand-written page): words only the code holds
    assert "Counts since start plus keys/bytes held" in api and "read-only mapping" in api
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "yokedcache demo --duration 5" in cli and "--8&lt;--" not in cli  # the samples were included


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """What --strict buys: the same site with one dead link does not build."""
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    page = copy / "docs" / "security.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [the lost page](lost.md).\n", encoding="utf-8")
    built = mkdocs_build(copy, tmp_path / "site")
    assert built.returncode != 0 and "lost.md" in built.stderr


@pytest.mark.parametrize("name", list(docs_samples.GENERATORS))
def test_sample_outputs_are_what_their_commands_print(name):
    generate, exact = docs_samples.GENERATORS[name]
    problem = docs_samples.drift(name, generate(), exact)
    assert problem is None, problem


def test_every_sample_is_shown_on_a_page_and_has_no_traceback():
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    for sample in (ROOT / "docs" / "samples").glob("*.txt"):
        text = sample.read_text(encoding="utf-8")
        assert f'--8<-- "{sample.name}"' in pages, f"{sample.name} is on no page"
        assert text.startswith("$ "), f"{sample.name} does not start with the command that made it"
        assert "Traceback" not in text


def test_the_stale_demo_sample_is_gone():
    everything = README + "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    assert "keys 535   size 38.0 KiB" not in everything


def _documented_instruments() -> set[str]:
    text = (ROOT / "docs" / "telemetry.md").read_text(encoding="utf-8")
    table = text[text.index("| Documented name | OTel instrument |") : text.index("Counting rules:")]
    instrument_column = [row.split("|")[2] for row in table.splitlines()[2:] if row.startswith("|")]
    return {name for cell in instrument_column for name in re.findall(r"`((?:yokedcache|db)\.[a-z_.]+)`", cell)}


def test_every_metric_in_semconv_is_in_the_documented_names_table():
    """A metric added to telemetry/semconv.py (ARCHITECTURE.md, "add a metric") needs its row."""
    instruments = set(sc.BUILT_IN_UNITS) | set(sc.NEAR_UNITS) | {sc.DB_CLIENT_DURATION}
    missing = instruments - _documented_instruments()
    assert not missing, f"add a row to docs/telemetry.md's metrics table for: {sorted(missing)}"


def test_the_names_check_would_catch_a_missing_row(monkeypatch):
    monkeypatch.setitem(sc.BUILT_IN_UNITS, "yokedcache.cache.brand_new", "{thing}")
    with pytest.raises(AssertionError, match="brand_new"):
        test_every_metric_in_semconv_is_in_the_documented_names_table()


def test_the_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move reference material into docs/"
    assert "](docs/status-page.png)" in README
    assert "make demo" in README and "make test" in README
    for way in ("Prometheus", "OTLP", "opentelemetry-instrument", "StatsD"):
        assert way in README
    links = re.findall(r"\]\((docs/[^)#]+\.md)(?:#[^)]*)?\)", README)
    assert len(set(links)) >= 6
    for link in links:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_each_headline_figure_names_the_command_that_regenerates_it():
    table = README[README.index("| Figure |") :].split("\n\n", 1)[0]
    rows = [r for r in table.splitlines()[2:] if r.startswith("|")]
    assert len(rows) >= 5
    for row in rows:
        command = row.rstrip(" |").rsplit("|", 1)[-1]
        assert re.search(r"`(make |python |pytest |yokedcache )[^`]+`", command), row

"""Every code block in README.md, collector-config/README.md and every page of the manual
(``docs/**/*.md``, so a page added later is covered without a change here) is either a complete
program that runs here (Python, against a private redis-server where it needs one) or is marked, on
the line before its fence, ``<!-- fragment: why -->``. Fragments in Python must still compile.

``docs/monitoring.md`` is left out: it is the documented contract, kept as written, and each of its
snippets runs as a complete program in ``examples/`` (``tests/test_examples.py``)."""

from __future__ import annotations

import ast
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The contract page, whose snippets run as examples/*.py instead (see the module docstring).
CONTRACT = "docs/monitoring.md"
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
DOCS = ["README.md", "collector-config/README.md", *(page for page in PAGES if page != CONTRACT)]
FENCE = re.compile(r"^```(\S*)\s*$")


def blocks() -> list[tuple[str, int, str, bool, str]]:
    """``(file, line, language, is_fragment, code)`` for every fenced block."""
    found = []
    for doc in DOCS:
        lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if match is None:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            fragment = i > 0 and lines[i - 1].startswith("<!-- fragment")
            found.append((doc, i + 1, match.group(1), fragment, "\n".join(lines[i + 1 : end])))
            i = end + 1
    return found


BLOCKS = blocks()


def test_every_block_is_a_program_or_marked_a_fragment():
    assert len(BLOCKS) >= 10
    assert {"docs/redis.md", "docs/operations.md", "docs/cli.md"} <= {doc for doc, *_ in BLOCKS}
    unmarked = [(doc, line, lang) for doc, line, lang, fragment, _ in BLOCKS if not fragment and lang != "python"]
    assert not unmarked, f"mark these <!-- fragment: why --> or make them Python programs: {unmarked}"


@pytest.mark.parametrize(
    ("doc", "line", "code"),
    [(d, n, c) for d, n, lang, frag, c in BLOCKS if lang == "python" and frag],
    ids=lambda v: str(v)[:40],
)
def test_python_fragments_compile(doc, line, code):
    compile(code, f"{doc}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize(
    ("doc", "line", "code"),
    [(d, n, c) for d, n, lang, frag, c in BLOCKS if lang == "python" and not frag],
    ids=lambda v: str(v)[:40],
)
def test_python_programs_run(doc, line, code, redis_url, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "YOKEDCACHE_REDIS_URL": redis_url}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, f"{doc}:{line}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    shown = OUTPUTS.get((doc, line))
    if shown is not None:  # the page shows what it prints: it must print exactly that
        assert result.stdout.strip().splitlines() == shown.strip().splitlines(), f"{doc}:{line}"


#: The output a page shows right after a program: a block marked exactly
#: ``<!-- fragment: the output of the program above -->`` ("sample output" marks figures that vary
#: from run to run, such as timings, which are not compared).
OUTPUT_MARK = "<!-- fragment: the output of the program above -->"


def _outputs() -> dict[tuple[str, int], str]:
    found = {}
    for (doc, line, lang, frag, _), following in itertools.pairwise(BLOCKS):
        if lang != "python" or frag or following[0] != doc:
            continue
        marker = (ROOT / doc).read_text(encoding="utf-8").splitlines()[following[1] - 2]
        if marker.strip() == OUTPUT_MARK:
            found[(doc, line)] = following[4]
    return found


OUTPUTS = _outputs()


def test_pages_show_the_outputs_of_their_programs():
    """The pages that show a program's output are the ones whose output is compared above."""
    assert len(OUTPUTS) >= 5, sorted(OUTPUTS)

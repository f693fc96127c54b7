"""The sample outputs the manual shows, made by running the commands they show: ``make docs-samples``.

    python -m tests.docs_samples [--check] [--slow] [NAME ...]

Each sample is a file in ``docs/samples/`` that a page includes (``--8<-- "NAME.txt"``): the
command, then what it printed. Regenerating rewrites them; ``--check`` compares instead and exits
1 on drift. ``tests/test_docs.py`` runs the check: deterministic samples (help texts) must match to
the character, live ones (the demo, a health probe) line by line with their figures masked, since
latencies and counts differ from run to run but the lines and words must not. ``--slow`` also
regenerates ``scale.txt`` from ``make scale`` (about half an hour at 1M and 10M keys), which no
check repeats.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "docs" / "samples"
#: argparse wraps help to the terminal's width: fixed, so help samples are byte-for-byte stable.
ENV = {**{k: v for k, v in os.environ.items() if k != "YOKEDCACHE_REDIS_URL"}, "COLUMNS": "100"}
CLEAR = "\x1b[H\x1b[2J"


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env or ENV, timeout=timeout, cwd=ROOT)
    if done.returncode not in (0, 1, 2) or "Traceback" in done.stderr:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def cli_help() -> str:
    """``yokedcache --help`` and each command's ``--help``."""
    parts = []
    for command in ([], ["demo"], ["health"], ["stats"], ["bench"]):
        shown = " ".join(["yokedcache", *command, "--help"])
        parts.append(f"$ {shown}\n" + _run([sys.executable, "-m", "yokedcache", *command, "--help"]))
    return "\n".join(parts)


def demo() -> str:
    """``yokedcache demo --duration 5`` on a terminal (a pseudo-terminal here): its last screen and
    what it prints at the end. ``--port 0`` takes a free port, as a busy machine needs."""
    args = ["yokedcache", "demo", "--duration", "5", "--port", "0"]
    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=secondary, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=ENV, cwd=ROOT)  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the demo closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.wait(timeout=30) != 0 or "Traceback" in err:
        raise RuntimeError(f"the demo failed ({proc.returncode}):\n{err}")
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return f"$ {' '.join(args)}\n" + text.rsplit(CLEAR, 1)[-1]


def health() -> str:
    """The first probe a newcomer runs, against a private redis-server."""
    server = RedisServer()
    server.start()
    try:
        env = {**ENV, "YOKEDCACHE_REDIS_URL": server.url()}
        shown = f"$ YOKEDCACHE_REDIS_URL={server.url()} yokedcache health\n"
        probe = _run([sys.executable, "-m", "yokedcache", "health"], env)
        gone = f"redis://127.0.0.1:{free_port()}/0"
        failed = _run([sys.executable, "-m", "yokedcache", "health", "--redis-url", gone, "--timeout", "0.5"])
        return shown + probe + f"$ yokedcache health --redis-url {gone} --timeout 0.5\n" + failed
    finally:
        server.close()


def scale() -> str:
    """What ``make scale`` prints on stdout (its figures; stderr is not part of the sample)."""
    return "$ make scale\n" + _run(["make", "--no-print-directory", "scale"], timeout=4 * 3600)


#: name -> (generator, exact?): exact samples must match to the character, the others in shape.
GENERATORS: dict[str, tuple[Callable[[], str], bool]] = {
    "cli-help": (cli_help, True),
    "demo": (demo, False),
    "health": (health, False),
}
SLOW: dict[str, tuple[Callable[[], str], bool]] = {"scale": (scale, False)}

_FIGURE = re.compile(r"(?<![\w/])-?\d[\d,.]*(?:\s?(?:µs|ms|s|KiB|MiB|GiB|B|%))?(?![\w])|(?<=\s)-(?=\s|$)")
#: Rows that a 5 s run may or may not have (about 2 category invalidations in 5 s, sometimes 0).
OPTIONAL = re.compile(r"^\s*invalidate_tags\b")


def shape(text: str) -> list[str]:
    """Lines with figures, widths and optional rows taken out: what must not drift."""
    lines = []
    for line in text.splitlines():
        if OPTIONAL.match(line):
            continue
        lines.append(" ".join(_FIGURE.sub("#", line).split()))
    return lines


def drift(name: str, fresh: str, exact: bool) -> str | None:
    """Why the stored sample ``name`` no longer matches ``fresh`` output, or ``None``."""
    path = SAMPLES / f"{name}.txt"
    stored = path.read_text(encoding="utf-8") if path.exists() else ""
    fresh = fresh.replace("optional arguments:", "options:")  # Python 3.10's argparse heading
    if exact and stored != fresh:
        return f"{path.relative_to(ROOT)} differs from a fresh run: run make docs-samples"
    if not exact and shape(stored) != shape(fresh):
        pairs = zip(shape(stored), shape(fresh), strict=False)
        diff = [f"  stored: {a!r}\n  fresh:  {b!r}" for a, b in pairs if a != b]
        detail = "\n".join(diff[:3]) or "  (a line more or less)"
        return f"{path.relative_to(ROOT)}'s lines differ from a fresh run: run make docs-samples\n{detail}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate (or --check) the manual's sample outputs")
    parser.add_argument("names", nargs="*", help=f"samples to make (default: all of {', '.join(GENERATORS)})")
    parser.add_argument("--check", action="store_true", help="compare with fresh runs instead of writing")
    parser.add_argument("--slow", action="store_true", help="also make scale.txt with make scale (~30 min)")
    args = parser.parse_args(argv)
    chosen = {**GENERATORS, **(SLOW if args.slow else {})}
    names = args.names or list(chosen)
    problems = []
    for name in names:
        generate, exact = {**GENERATORS, **SLOW}[name]
        fresh = generate()
        if args.check:
            problem = drift(name, fresh, exact)
            if problem:
                problems.append(problem)
        else:
            (SAMPLES / f"{name}.txt").write_text(fresh, encoding="utf-8")
            print(f"wrote docs/samples/{name}.txt")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

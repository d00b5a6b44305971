#!/usr/bin/env python3
"""Mutation testing of fastsim's timeline, durations, evictions and strategies (stdlib only).

Each mutant of the catalogue (``tools/mutants.toml``) is one small change to one line of one
file under ``fastsim/``. The runner snapshots the repository once into a temporary folder (the
working tree as it is, or a git revision with ``--rev``), checks every snippet of the catalogue
against it (each must occur exactly once), checks that the snapshot's ``fastsim`` is the one
Python imports and that the unmutated selection passes, then for each mutant copies the
snapshot, applies the change and runs the test selection there:

    PYTHONPATH=<copy> NUMBA_CACHE_DIR=<fresh> NUMBA_BOUNDSCHECK=1 \\
        python -m pytest -p no:cacheprovider -x -q -rfE <tests>

A mutant is *killed* when a test fails, *killed (crash)* when pytest could not run the tests
(import or collection error, an error in a fixture, a kernel that no longer compiles), *killed
(timeout)* when the run exceeds the time limit, and *survived* when every test passes. The
working tree is never written to. See docs/testing.md, "Mutation testing".

    python tools/mutation.py [--list] [--only ID,...] [--tests ...] [--jobs N] [--out FILE.md]

Exit status: 0 when every mutant run was killed, 1 when one survived, 2 on a usage or catalogue
error, or when the unmutated selection does not pass.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import fnmatch
import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "tools" / "mutants.toml"

#: Test files left out of the default selection: they never run a timeline (trace files,
#: importers, the generator, trace statistics, presets, capture, plots and reports), or only time
#: it or run it elsewhere (bench, dask).
EXCLUDE = (
    "test_capture*", "test_report*", "test_sweep_dask*", "test_bench*", "test_trace_io*",
    "test_importers*", "test_generate*", "test_stats*", "test_presets*",
)
#: Order of the selection, so that the cheap, sharp tests run first (a mutant stops at its first
#: failure): hand-worked cases, then the timeline's property tests, then the strategies', then
#: the rest alphabetically. New test files join the selection by themselves.
ORDER = (
    "test_golden*", "test_duration*", "test_hand*", "test_timeline*", "test_peer*",
    "test_strategy_*", "test_strategies*", "test_plugin*", "test_replay*",
)
FAILURE = re.compile(r"^(FAILED|ERROR) (.+?)(?: - .*)?$", re.M)
COMPILE_ERROR = re.compile(r"numba\.core\.errors\.(TypingError|LoweringError|UnsupportedError)")


class CatalogueError(Exception):
    """The catalogue does not fit the sources: fix the snippet, never silence the check."""


@dataclass
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    what: str
    equivalent: str = ""
    line: int = 0  # 1-based line of the change in the snapshot, set by locate()

    def changed(self) -> tuple[str, str]:
        for a, b in zip(self.original.split("\n"), self.replacement.split("\n")):
            if a != b:
                return a.strip(), b.strip()
        raise CatalogueError(f"mutant {self.id}: replacement equals original")


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # killed | killed (crash) | killed (timeout) | survived
    test: str
    seconds: float
    tail: str = ""


def load_catalogue(path: Path) -> list[Mutant]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    fields = {"id", "file", "original", "replacement", "what", "equivalent"}
    mutants, seen = [], set()
    for i, entry in enumerate(data.get("mutant", [])):
        unknown = set(entry) - fields
        missing = {"id", "file", "original", "replacement", "what"} - set(entry)
        if unknown or missing:
            raise CatalogueError(f"{path}: mutant #{i + 1} ({entry.get('id', '?')}): "
                                 f"unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        m = Mutant(**entry)
        if m.id in seen:
            raise CatalogueError(f"{path}: mutant id {m.id!r} appears twice")
        seen.add(m.id)
        a, b = m.original.split("\n"), m.replacement.split("\n")
        if len(a) != len(b) or sum(x != y for x, y in zip(a, b)) != 1:
            raise CatalogueError(f"mutant {m.id}: original and replacement must differ in exactly one line")
        if not m.file.startswith("fastsim/"):
            raise CatalogueError(f"mutant {m.id}: {m.file} is not under fastsim/")
        mutants.append(m)
    if not mutants:
        raise CatalogueError(f"{path}: no [[mutant]] entries")
    return mutants


def locate(m: Mutant, root: Path) -> str:
    """The mutated text of ``m.file`` under ``root``; sets ``m.line``. Loud when the snippet rots."""
    path = root / m.file
    if not path.is_file():
        raise CatalogueError(f"mutant {m.id}: {m.file} does not exist")
    text = path.read_text()
    n = text.count(m.original)
    if n != 1:
        raise CatalogueError(f"mutant {m.id}: the original snippet occurs {n} times in {m.file} "
                             f"(it must occur exactly once): {m.original!r}")
    at = text.index(m.original)
    first = m.original.split("\n").index(next(a for a, b in zip(m.original.split("\n"), m.replacement.split("\n")) if a != b))
    m.line = text.count("\n", 0, at) + 1 + first
    mutated = text[:at] + m.replacement + text[at + len(m.original):]
    try:
        compile(mutated, m.file, "exec")
    except SyntaxError as e:
        raise CatalogueError(f"mutant {m.id}: the mutated {m.file} is not valid Python: {e}") from None
    return mutated


def snapshot(dest: Path, rev: str | None) -> None:
    """Copy the repository into ``dest``: git revision ``rev``, or the working tree's tracked and
    not-ignored files as they are now. Only read-only git commands."""
    dest.mkdir(parents=True)
    if rev:
        tar = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev],
                             capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
        return
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in names:
        src = REPO / rel
        if rel and src.is_file() and not src.is_symlink():  # deleted-but-tracked files skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def select_tests(root: Path) -> list[str]:
    files = sorted(p.name for p in (root / "tests").glob("test_*.py"))
    files = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in EXCLUDE)]

    def rank(name):
        return next((i for i, g in enumerate(ORDER) if fnmatch.fnmatch(name, g)), len(ORDER)), name
    return [f"tests/{f}" for f in sorted(files, key=rank)]


_children: set[subprocess.Popen] = set()
_lock = threading.Lock()


def run_pytest(root: Path, tests: list[str], timeout: float, extra: list[str]) -> tuple[int | None, str, float]:
    """Run the selection in ``root``; returns ``(exit status or None on timeout, output, seconds)``."""
    cache = root / ".numba-cache"
    cache.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_CACHE_DIR=str(cache), NUMBA_BOUNDSCHECK="1",
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x", "-q", "-rfE",
           f"--basetemp={root / '.pytest-tmp'}", *extra, *tests]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    with _lock:
        _children.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, _ = proc.communicate()
        rc = None
    except BaseException:  # interrupted (SIGTERM, Ctrl-C): take the child down with us
        _kill(proc)
        raise
    finally:
        with _lock:
            _children.discard(proc)
    return rc, out, time.monotonic() - t0


def _kill(proc: subprocess.Popen) -> None:
    """End one child we started and the processes it started (its own session), by id."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def classify(rc: int | None, out: str) -> tuple[str, str]:
    """``(verdict, first failing test or what crashed)`` from pytest's exit status and output."""
    if rc is None:
        return "killed (timeout)", "-"
    if rc == 0:
        return "survived", "-"
    hits = FAILURE.findall(out)
    first = hits[0][1].strip() if hits else ""
    if rc == 1 and hits and hits[0][0] == "FAILED":
        return ("killed (crash)" if COMPILE_ERROR.search(out) else "killed"), first
    what = {2: "interrupted (collection error)", 3: "internal error", 4: "usage error", 5: "no tests collected"}
    return "killed (crash)", first or what.get(rc, f"pytest exit {rc}")


def run_mutant(m: Mutant | None, base: Path, work: Path, tests, timeout, extra, keep) -> Outcome:
    name = m.id if m else "baseline"
    copy = work / name
    shutil.copytree(base, copy)
    try:
        if m:
            (copy / m.file).write_text(locate(m, copy))
        rc, out, secs = run_pytest(copy, tests, timeout, extra)
        verdict, test = classify(rc, out)
        return Outcome(m, verdict, test, secs, "\n".join(out.rstrip().splitlines()[-15:]))
    finally:
        if not keep:
            shutil.rmtree(copy, ignore_errors=True)


def sanity_check(base: Path, work: Path) -> str:
    """The snapshot's fastsim must be the one imported (not the working tree's editable install)."""
    env = dict(os.environ, PYTHONPATH=str(base), PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=str(work / ".numba-sanity"))
    res = subprocess.run([sys.executable, "-c", "import fastsim; print(fastsim.__file__)"], cwd=work, env=env,
                         capture_output=True, text=True)
    path = res.stdout.strip()
    print(f"sanity check: fastsim imported from {path or res.stderr.strip()[-500:]}", flush=True)
    if res.returncode != 0 or not Path(path).resolve().is_relative_to(base.resolve()):
        sys.exit("mutation.py: the copy's fastsim is not the one Python imports; refusing to run "
                 f"(it resolved to {path or 'an import error'}, the working tree is {REPO})")
    return path


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome], equivalents: list[Mutant], header: str) -> str:
    rows = ["| mutant | file | what changed | killed? | first test that killed it |", "|---|---|---|---|---|"]
    for o in outcomes:
        a, b = o.mutant.changed()
        rows.append(f"| `{o.mutant.id}` | {o.mutant.file}:{o.mutant.line} | `{cell(a)}` → `{cell(b)}`: "
                    f"{cell(o.mutant.what)} | {o.verdict} | {cell(o.test if o.test != '-' else '—')} |")
    for m in equivalents:
        a, b = m.changed()
        rows.append(f"| `{m.id}` | {m.file}:{m.line} | `{cell(a)}` → `{cell(b)}`: {cell(m.what)} | "
                    f"equivalent, not run | {cell(m.equivalent)} |")
    return header + "\n\n" + "\n".join(rows) + "\n"


def summary(outcomes: list[Outcome], equivalents: list[Mutant]) -> str:
    n = len(outcomes)
    killed = [o for o in outcomes if o.verdict.startswith("killed")]
    crash = sum(o.verdict == "killed (crash)" for o in outcomes)
    tout = sum(o.verdict == "killed (timeout)" for o in outcomes)
    secs = [o.seconds for o in outcomes]
    timing = (f"; one mutant took {min(secs):.0f}-{max(secs):.0f} s, median {statistics.median(secs):.0f} s"
              if secs else "")
    return (f"{n} mutants run: {len(killed)} killed ({crash} by crash, {tout} by timeout), {n - len(killed)} "
            f"survived; {len(equivalents)} equivalent mutants listed, not run{timing}.")


def describe_source(rev: str | None) -> str:
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()
    if rev:
        short = git("rev-parse", "--short", rev)
        return f"git revision {short}" + ("" if short.startswith(rev) else f" ({rev})")
    dirty = git("status", "--porcelain", "--", "fastsim", "tests", "docs")
    return f"working tree at {git('rev-parse', '--short', 'HEAD')}" + (" with uncommitted changes" if dirty else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the catalogue (checked against the sources) and exit")
    ap.add_argument("--only", help="comma-separated mutant ids to run")
    ap.add_argument("--tests", help="comma-separated test files or node ids, replacing the default selection")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    ap.add_argument("--out", type=Path, help="write the Markdown summary and table to this file")
    ap.add_argument("--rev", help="mutate this git revision instead of the working tree as it is")
    ap.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the baseline run + 120)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run (development only)")
    ap.add_argument("--pytest-args", default="", help="extra pytest arguments, e.g. '--hypothesis-seed=1'")
    ap.add_argument("--catalogue", type=Path, default=CATALOGUE, help="mutant catalogue (TOML)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies (for debugging)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    work = Path(tempfile.mkdtemp(prefix="fastsim-mutation-"))
    try:
        base = work / "snapshot"
        snapshot(base, args.rev)
        try:
            mutants = load_catalogue(args.catalogue)
            if args.only:
                wanted = [x.strip() for x in args.only.split(",") if x.strip()]
                unknown = sorted(set(wanted) - {m.id for m in mutants})
                if unknown:
                    raise CatalogueError(f"unknown mutant ids: {', '.join(unknown)}")
                mutants = [m for m in mutants if m.id in wanted]
            for m in mutants:
                locate(m, base)
        except CatalogueError as e:
            print(f"mutation.py: catalogue error: {e}", file=sys.stderr)
            return 2
        source = describe_source(args.rev)
        if args.list:
            for m in mutants:
                tag = "  [equivalent]" if m.equivalent else ""
                print(f"{m.id:34} {m.file}:{m.line:<5} {m.what}{tag}")
            print(f"{len(mutants)} mutants ({sum(bool(m.equivalent) for m in mutants)} equivalent), "
                  f"all snippets found once in the {source}")
            return 0
        tests = [t.strip() for t in args.tests.split(",") if t.strip()] if args.tests else select_tests(base)
        missing = [t for t in tests if not (base / t.split("::")[0]).exists()]
        if missing:
            print(f"mutation.py: no such test file in the snapshot: {', '.join(missing)}", file=sys.stderr)
            return 2
        extra = args.pytest_args.split()
        print(f"source: {source}\ntests: {' '.join(tests)}", flush=True)
        sanity_check(base, work)

        timeout = args.timeout
        if not args.no_baseline:
            print("baseline: running the unmutated selection ...", flush=True)
            b = run_mutant(None, base, work, tests, timeout or 4 * 3600, extra, args.keep)
            print(f"baseline: {b.verdict} in {b.seconds:.0f} s", flush=True)
            if b.verdict != "survived":
                print(f"mutation.py: the unmutated selection does not pass ({b.verdict}: {b.test}); "
                      f"every mutant would look killed.\n{b.tail}", file=sys.stderr)
                return 2
            timeout = timeout or 3 * b.seconds + 120
        timeout = timeout or 3600

        run = [m for m in mutants if not m.equivalent]
        equivalents = [m for m in mutants if m.equivalent]
        print(f"{len(run)} mutants to run ({len(equivalents)} equivalent, not run); "
              f"{args.jobs} at a time, {timeout:.0f} s each at most", flush=True)
        outcomes: dict[str, Outcome] = {}
        with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_mutant, m, base, work, tests, timeout, extra, args.keep) for m in run]
            try:
                for fut in cf.as_completed(futures):
                    o = fut.result()
                    outcomes[o.mutant.id] = o
                    print(f"[{len(outcomes):>3}/{len(run)}] {o.mutant.id:34} {o.verdict:17} {o.seconds:6.0f} s  "
                          f"{o.test}", flush=True)
                    if o.verdict == "killed (crash)":
                        print("      " + o.tail.replace("\n", "\n      "), flush=True)
            except BaseException:  # interrupted: stop what runs instead of waiting for it
                pool.shutdown(wait=False, cancel_futures=True)
                with _lock:
                    for proc in list(_children):
                        _kill(proc)
                raise
        ordered = [outcomes[m.id] for m in run]
        date = datetime.date.today().isoformat()
        header = (f"Run of {date} on the {source}; selection: {' '.join(Path(t).name for t in tests)}.\n"
                  f"{summary(ordered, equivalents)}")
        text = table(ordered, equivalents, header)
        print("\n" + text, flush=True)
        if args.out:
            args.out.write_text(text)
            print(f"table written to {args.out}")
        return 0 if all(o.verdict.startswith("killed") for o in ordered) else 1
    finally:
        with _lock:
            for proc in list(_children):
                _kill(proc)
        if args.keep:
            print(f"temporary copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

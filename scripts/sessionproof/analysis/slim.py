"""Slim kept run folders (results/reference/) to what `make report` needs to render them again.

`python -m sessionproof.analysis.slim FOLDER [FOLDER ...]` slims every run folder in each FOLDER (a run,
a matrix, or a folder of runs: any folder holding meta.json and raw/):

- raw/hlog/ goes: the HdrHistogram log exports, written from the same per-second histograms as
  raw/histograms.jsonl (load/recorder.py write_hlogs), which the reports read instead.
- Locust's own files go: raw/locust_*.csv (its stats, failures, exceptions and stats history, rounded
  to two digits where the reports use the HdrHistograms) and locust.html. No report reads them.
- Every other raw file larger than one disk block (4 KiB) is gzip-compressed to raw/<name>.gz; the readers
  (runfiles.py) read raw/<name>.gz where raw/<name> is absent. Smaller files stay plain: compressing them
  saves no disk block, and plain they stay readable. raw/ledger.jsonl (the acknowledged writes the live
  final read judged) and raw/locust.log are kept this way although no report reads them: they are the
  run's evidence.
- plots/*.png go: `make report` draws them again from raw/ (a matrix's own matrix.png, drawn from its
  runs' summaries, stays). A file that README.md, docs/*.md or results/reference/README.md cite is never
  removed: a path starting results/ (from the root of the checkout --repo names) or a Markdown link.

summary.json, report.md and meta.json stay as they are. The slimming is idempotent and changes no figure:
`make report RUN=<run>` renders the same summary.json from the slimmed raw/ as from the original.

`python -m sessionproof.analysis.slim --render FOLDER` renders every run in FOLDER again (report.py's
build_report) and then every matrix in it (matrix.py's rebuild_matrix, from the runs' new summaries).

Exit status: 0, or 2 when a FOLDER holds no run folder or a run cannot be rendered.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sessionproof.analysis.report import render_tree, run_folders
from sessionproof.runfiles import GZIP_SUFFIX, LOCUST_HTML, RunFileError, gzipped
from sessionproof.validity import BAD_INPUT_EXIT_CODE

BLOCK_BYTES = 4096  # a file's smallest footprint on disk: below it, compressing saves nothing
DROPPED_RAW_DIRS = ("hlog",)
DROPPED_RAW_GLOBS = ("locust_*.csv",)
DROPPED_RUN_FILES = (LOCUST_HTML,)
CITING_DOCS = ("README.md", "docs/*.md", "results/reference/README.md")
CITED_PATH = re.compile(r"results/[\w./-]*[\w/]")  # read from the checkout's root
LINK_TARGET = re.compile(r"\]\(([^)\s#]+)")  # a Markdown link or image, read from the document's folder
GZIP_LEVEL = 9


@dataclass
class SlimReport:
    removed: list[Path] = field(default_factory=list)
    compressed: list[Path] = field(default_factory=list)
    kept_cited: list[Path] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cited_files(repo: Path) -> set[Path]:
    """The files that README.md, docs/*.md and results/reference/README.md name, resolved: every path that
    starts with results/ (from the checkout's root) and every link target (from the document's folder)."""
    repo = Path(repo)
    cited = set()
    for pattern in CITING_DOCS:
        for doc in repo.glob(pattern):
            text = doc.read_text(encoding="utf-8")
            candidates = [repo / match for match in CITED_PATH.findall(text)]
            candidates += [doc.parent / target for target in LINK_TARGET.findall(text) if "://" not in target]
            cited.update(path.resolve() for path in candidates if path.is_file())
    return cited


def _gzip(path: Path) -> Path:
    """path compressed to path.gz (written whole, then renamed: an interrupted run leaves path intact)."""
    target = gzipped(path)
    partial = target.with_name(target.name + ".partial")
    # mtime 0 and no file name in the header: the same input always gives the same bytes.
    with (
        path.open("rb") as source,
        open(partial, "wb") as raw_out,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, compresslevel=GZIP_LEVEL, mtime=0) as out,
    ):
        shutil.copyfileobj(source, out)
    partial.replace(target)
    path.unlink()
    return target


def _remove(path: Path, report: SlimReport, cited: set[Path]) -> None:
    if path.resolve() in cited or (path.is_dir() and any(p.resolve() in cited for p in path.rglob("*"))):
        report.kept_cited.append(path)
        return
    report.removed.append(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def slim_run(run_dir: Path, cited: Iterable[Path] = ()) -> SlimReport:
    """Slim one run folder in place (see the module's docstring); never removes a file in cited."""
    run_dir = Path(run_dir)
    cited = {Path(p).resolve() for p in cited}
    report = SlimReport(bytes_before=_size(run_dir))
    raw = run_dir / "raw"
    doomed = [raw / name for name in DROPPED_RAW_DIRS if (raw / name).is_dir()]
    doomed += [path for pattern in DROPPED_RAW_GLOBS for path in sorted(raw.glob(pattern))]
    doomed += [run_dir / name for name in DROPPED_RUN_FILES if (run_dir / name).is_file()]
    doomed += sorted((run_dir / "plots").glob("*.png"))
    for path in doomed:
        _remove(path, report, cited)
    plots = run_dir / "plots"
    if plots.is_dir() and not any(plots.iterdir()):
        plots.rmdir()
    for path in sorted(raw.iterdir()):
        if path.is_file() and path.suffix != GZIP_SUFFIX and path.stat().st_size > BLOCK_BYTES:
            if gzipped(path).exists():
                raise RunFileError(f"{path} and {gzipped(path)} both exist; keep one of them")
            report.compressed.append(_gzip(path))
    if not any((run_dir / "plots").glob("*.png")):
        mark_slimmed(run_dir)
    report.bytes_after = _size(run_dir)
    return report


SLIMMED_NOTE = (
    "> A slimmed copy (`python -m sessionproof.analysis.slim`): its plots and Locust's own files are not kept. "
    "`make report RUN={run}` draws the plots again from raw/ and rewrites this report with the same figures."
)


def mark_slimmed(run_dir: Path) -> None:
    """Say under report.md's title why its pictures are missing and how to draw them (once; a render removes it)."""
    report_md = run_dir / "report.md"
    if not report_md.is_file():
        return
    text = report_md.read_text(encoding="utf-8")
    lines = text.split("\n")
    if "(plots/" not in text or any(line.startswith("> A slimmed copy") for line in lines[:4]):
        return
    note = SLIMMED_NOTE.format(run=_shown(run_dir))
    report_md.write_text("\n".join([lines[0], "", note, *lines[1:]]), encoding="utf-8")


def _shown(run_dir: Path) -> str:
    """run_dir as a user would type it in the checkout: from results/ on, where it is under results/."""
    parts = Path(run_dir).resolve().parts
    return "/".join(parts[parts.index("results") :]) if "results" in parts else str(run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.analysis.slim",
        description=__doc__.split("\n\n")[0],
        epilog="See the module's docstring (scripts/sessionproof/analysis/slim.py) for what goes and why.",
    )
    parser.add_argument("folders", type=Path, nargs="+", metavar="FOLDER", help="a run, a matrix or a folder of runs")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the checkout whose docs cite files (default .)")
    parser.add_argument("--render", action="store_true", help="render the runs and matrices again instead")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not run_folders(folder):
            print(f"error: {folder} holds no run folder (meta.json and raw/)", file=sys.stderr)
            return BAD_INPUT_EXIT_CODE
    try:
        if args.render:
            for folder in args.folders:
                for run_dir, summary in render_tree(folder):
                    print(f"rendered {run_dir} (SLOs {'passed' if summary['slo']['passed'] else 'breached'})")
            return 0
        cited = cited_files(args.repo)
        for folder in args.folders:
            for run_dir in run_folders(folder):
                done = slim_run(run_dir, cited)
                print(
                    f"{run_dir}: {done.bytes_before / 1e6:.2f} MB -> {done.bytes_after / 1e6:.2f} MB "
                    f"({len(done.removed)} removed, {len(done.compressed)} compressed, "
                    f"{len(done.kept_cited)} kept as cited)"
                )
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())

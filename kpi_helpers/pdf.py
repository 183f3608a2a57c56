"""``report.pdf``: the one file printed by headless Chromium (``kpi report --pdf``).

The PDF is ``report.html`` (:mod:`kpi_helpers.onefile`) as its print styles lay it out: the brief as
page one, then the summary and every page, each on new pages; no table or chart cut across pages;
the quarter, the data's fingerprint and ``Page n of N`` in the footer (CSS ``@page`` margin boxes,
which Chromium prints since version 131). Chromium runs headless with its own empty profile, no
network (every host name resolves to nothing) and no header or footer of its own.

Chromium is found as ``KPI_CHROMIUM`` (a path), else ``chromium``, ``chromium-browser``,
``google-chrome`` or ``google-chrome-stable`` on ``PATH`` (Debian: ``apt-get install chromium``);
:func:`find_chromium` refuses a run that asks for a PDF without one before anything runs.

Reproducible: Chromium stamps the PDF with the time it printed it; with ``SOURCE_DATE_EPOCH`` set
that stamp is replaced by it, so the same report gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .exceptions import ReportError, ReportInputError
from .planning import clip, source_date_epoch

__all__ = ["PDF", "find_chromium", "print_pdf", "write_pdf"]

#: the PDF's name in a quarter folder
PDF = "report.pdf"
#: seconds Chromium may take to print the report
TIMEOUT = 180.0
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's info dictionary: /CreationDate (D:20261202013935+00'00')
_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}(?:[+-]\d\d'\d\d')?")


def find_chromium() -> Path:
    """The Chromium to print with; :class:`ReportInputError` (exit 2) when there is none."""
    named = os.environ.get("KPI_CHROMIUM", "").strip()
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ReportInputError(f"`KPI_CHROMIUM` names `{named}`, which is not an executable file")
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ReportInputError(
        "`--pdf` needs Chromium to print the report, and none was found (looked for "
        f"{', '.join(f'`{n}`' for n in _NAMES)}); install it (Debian: `apt-get install chromium`) or set "
        "`KPI_CHROMIUM` to its path"
    )


def print_pdf(html: Path, target: Path, *, chromium: Path | None = None, timeout: float = TIMEOUT) -> Path:
    """Print the page ``html`` to ``target`` with headless Chromium; :class:`ReportError` when it fails.

    Page size, margins and footers are the page's own ``@page`` rules.
    """
    browser = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="kpi-chromium-") as profile:
        partial = target.with_name(f".{target.name}.printing")
        args = [
            str(browser),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # a report makes no request: nothing resolves
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            # print only once everything is loaded, decoded and laid out, however busy the machine is:
            # the same page gives the same PDF
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
            f"--print-to-pdf={partial}",
            html.resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            partial.unlink(missing_ok=True)
            raise ReportError(f"Chromium did not print `{html.name}` within {timeout:g} s") from exc
        except OSError as exc:
            raise ReportError(f"cannot run Chromium `{browser}`: {exc.strerror or exc}") from exc
        if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            partial.unlink(missing_ok=True)
            said = [line for line in done.stderr.splitlines() if "ERROR" in line or "error" in line][-3:]
            raise ReportError(
                f"Chromium could not print `{html.name}` to PDF (exit {done.returncode})"
                + (f": {clip(' / '.join(said), 400)}" if said else "")
            )
        data = _dated(partial.read_bytes(), source_date_epoch())
        partial.unlink()
    from . import fileio

    fileio.write_atomic(target, data)
    return target


def _dated(pdf: bytes, epoch: int | None) -> bytes:
    """The PDF with its creation and modification dates set to ``epoch`` (unchanged when None).

    The dates are replaced digit for digit, so no byte offset of the file moves.

    >>> _dated(b"/CreationDate (D:20261202013935+01'00')", 0)
    b"/CreationDate (D:19700101000000+00'00')"
    """
    if epoch is None:
        return pdf
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y%m%d%H%M%S").encode("ascii")

    def same_length(m: re.Match[bytes]) -> bytes:
        new = b"/" + m.group(1) + b" (D:" + stamp + (b"+00'00'" if m.group(0).endswith(b"'") else b"")
        return new if len(new) == len(m.group(0)) else m.group(0)

    return _DATE.sub(same_length, pdf)


def write_pdf(folder: Path, *, chromium: Path | None = None) -> Path:
    """Print ``folder/report.html`` to ``folder/report.pdf``."""
    from .onefile import REPORT

    return print_pdf(folder / REPORT, folder / PDF, chromium=chromium)

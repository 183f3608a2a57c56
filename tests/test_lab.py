"""Notebooks 00-04 in JupyterLab, used as an analyst uses them, through Debian's Chromium.

A JupyterLab server (this interpreter's, so it sees the kit's ``kpi-kit`` kernel) serves a temporary
copy of ``notebooks/`` next to ``data/sample`` (the notebooks read ``../data/sample``). For each
notebook the test opens it, runs every cell from the Run menu, waits for the kernel, and checks that
no cell shows an error or anything on stderr. Then it changes every control of the ``widgets`` cells
(another option of each dropdown, another number in each text box, a step of each slider, a click
on each toggle) and checks that the view shows its busy state (:data:`kpi_helpers.widgets.BUSY` and
disabled controls, recorded by a MutationObserver installed before the change, however brief), that
the status line is empty again afterwards (no input it could not read), and that some output of the
view changed.

Run it with ``-s`` to see how long each notebook took and what each control changed::

    pytest tests/test_lab.py -s

JupyterLab virtualises long notebooks by default (cells outside the viewport are not in the DOM);
the server's settings folder turns that off (``windowingMode: none``) so every cell is there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_browser import CHROMIUM, LAUNCH_ARGS

from kpi_helpers.widgets import BUSY

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["00-quarterly-summary", "01-goal-setting", "02-traffic-and-lead-value", "03-channel-conversion", "04-roi"]
KERNEL_DISPLAY_NAME = "Marketing KPI kit"
#: the notebook tab on show (JupyterLab hides the others with this class)
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: the controls a view can have, as ipywidgets 8 renders them
CONTROLS = ".widget-dropdown, .widget-text, .widget-textarea, .widget-slider, .widget-checkbox, .widget-toggle-button"
RUN_TIMEOUT_MS = 240_000  # Run All on a cold cache (validation), two busy cores
CHANGE_TIMEOUT_MS = 90_000  # one redraw: another quarter's KPIs computed from scratch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]

# The observer records the busy state of one cell's view from before a change until it is read back.
_DISABLED = ", ".join(f".jupyter-widgets {e}:disabled" for e in ("select", "input", "textarea", "button"))
_WATCH_JS = """([cell, busy, disabled]) => {
  const seen = {text: false, disabled: false};
  const look = () => {
    if (cell.innerText.includes(busy)) seen.text = true;
    if (cell.querySelector(disabled)) seen.disabled = true;
  };
  const observer = new MutationObserver(look);
  observer.observe(cell, {subtree: true, childList: true, characterData: true, attributes: true});
  window.__kpiBusy = {seen, observer};
}"""
# What a cell's view shows below its controls: each output's text, or its image's bytes as a hash.
_OUTPUTS_JS = """(cell) => [...cell.querySelectorAll('.jp-OutputArea-output')].slice(1).map(o => {
  const img = o.querySelector('img');
  if (!img) return o.innerText;
  let h = 0;
  for (let i = 0; i < img.src.length; i++) h = (h * 31 + img.src.charCodeAt(i)) | 0;
  return 'image ' + img.src.length + ' ' + h;
})"""
_CHANGED_JS = f"([cell, busy, before]) => JSON.stringify(({_OUTPUTS_JS})(cell)) !== JSON.stringify(before)"
_BUSY_OR_CHANGED_JS = f"([cell, busy, before]) => window.__kpiBusy.seen.text || ({_CHANGED_JS})([cell, busy, before])"
# Run All has finished: Run All marks every cell queued (`[*]`) at once; a cell that fails stops it
# and the cells after it go back to `[ ]`.
_RUN_ALL_DONE_JS = """(panel) => {
  const prompts = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  return !prompts.includes('[*]:') && prompts.some(p => /^\\[\\d+\\]:$/.test(p));
}"""
_SETTLED_JS = """([cell, busy, before, disabled]) => !cell.innerText.includes(busy) && !cell.querySelector(disabled)"""


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server: its base URL and token, and the log it writes."""

    url: str
    token: str
    log: Path

    def api(self, path: str, method: str = "GET") -> Any:
        """A call to the server's REST API (no proxy: the server is on localhost)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with opener.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session's kernel, so one notebook's kernel does not slow the next."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lab_folders(base: Path) -> dict[str, str]:
    """The notebooks next to the sample as the notebooks expect it, and JupyterLab's own folders:
    settings without windowing and without news or update checks, an empty workspace, a runtime."""
    (base / "data").mkdir()
    try:
        (base / "data" / "sample").symlink_to(ROOT / "data" / "sample", target_is_directory=True)
    except OSError:  # a file system without symlinks
        shutil.copytree(ROOT / "data" / "sample", base / "data" / "sample")
    shutil.copytree(ROOT / "notebooks", base / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = base / "settings" / "@jupyterlab"
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for folder in ("workspaces", "runtime"):
        (base / folder).mkdir()
    return {
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a copy of the notebooks, on a free localhost port, with a token."""
    pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package (pip install playwright)")
    from kpi_helpers.kernels import KERNEL_NAME, ensure_kernel

    # the notebooks name the kit's kernel; this interpreter's spec is the one the server must find
    assert ensure_kernel() == KERNEL_NAME, f"another `{KERNEL_NAME}` kernelspec shadows this environment's"
    base = tmp_path_factory.mktemp("lab")
    env = {
        **os.environ,
        **_lab_folders(base),
        # this environment's kernelspecs first; the kernel imports this checkout's kpi_helpers
        "JUPYTER_PATH": os.pathsep.join(
            filter(None, [str(Path(sys.prefix, "share", "jupyter")), os.environ.get("JUPYTER_PATH")])
        ),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    port, token = _free_port(), uuid.uuid4().hex
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={base / 'notebooks'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI and containers run as root
    log = base / "jupyterlab.log"
    with log.open("w") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                running.api("/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield running
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclass
class LabPage:
    """JupyterLab open in Chromium (loaded once: opening the app costs more than a notebook), and the
    errors its scripts threw."""

    page: Any
    errors: list[str]


@pytest.fixture(scope="module")
def lab_page(lab: Lab) -> Iterator[LabPage]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{lab.url}/lab?reset&token={lab.token}")
            page.locator(".jp-DirListing-item", has_text=NAMES[0]).wait_for(timeout=120_000)
            yield LabPage(page, errors)
        finally:
            browser.close()


# --------------------------------------------------------------------------------------------------
# Changing one control as a person would


def _change(control: Any) -> str:
    """Change ``control`` (a rendered ipywidgets control) to another value; returns what was done."""
    kind = control.get_attribute("class") or ""
    # a control's description; an empty label holds a zero-width space
    name = next((t for t in (t.strip("\u200b ") for t in control.locator("label").all_inner_texts()) if t), "")
    if "widget-dropdown" in kind:
        select = control.locator("select")
        now = select.input_value()
        other = next(o for o in select.evaluate("s => [...s.options].map(o => o.value)") if o != now)
        select.select_option(other)
        return f"{name}: {now} -> {other}"
    if "widget-text" in kind:  # Text, Textarea, IntText, FloatText: type another number, then Enter
        box = control.locator("input, textarea").first
        now = box.input_value()
        other = _another_number(now)
        box.fill(other)
        box.press("Enter")
        return f"{name}: {now} -> {other}"
    if "widget-slider" in kind:
        handle = control.locator(".noUi-handle").first  # one step, down when at the top
        now = handle.get_attribute("aria-valuenow")
        handle.press("ArrowLeft" if now == handle.get_attribute("aria-valuemax") else "ArrowRight")
        return f"{name}: {now} -> {handle.get_attribute('aria-valuenow')}"
    if "widget-checkbox" in kind:
        control.locator("input").click()
        return f"{name}: (un)ticked"
    if "widget-toggle-button" in kind:  # the control is the button
        control.click()
        return f"{control.inner_text()}: toggled"
    raise AssertionError(f"a control the test cannot change: {kind}")


def _another_number(text: str) -> str:
    """``text`` (a number as a box shows it: ``$3,361,401``, ``12.5%``, ``1.2k``) with its first digit
    changed, so it reads as another number in the same unit (``2%`` becomes ``3%``)."""
    for i, ch in enumerate(text):
        if ch.isdigit():
            return text[:i] + ("1" if ch == "9" else str(int(ch) + 1)) + text[i + 1 :]
    return "2%"  # an empty box


# --------------------------------------------------------------------------------------------------
# The test


def _open_and_run(page: Any, name: str) -> None:
    """Open ``name`` from the file browser, wait for its kernel, run every cell from the Run menu."""
    page.locator(".jp-DirListing-item", has_text=f"{name}.ipynb").dblclick()
    page.locator(f"{PANEL} .jp-Notebook").wait_for()
    assert page.locator(".jp-mod-current .lm-TabBar-tabLabel").first.inner_text() == f"{name}.ipynb"
    # the kernel the notebook names has started (no kernel picker came up) and is idle
    idle = page.locator(".jp-StatusBar-TextItem", has_text=f"{KERNEL_DISPLAY_NAME} | Idle")
    idle.wait_for(timeout=120_000)
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function(_RUN_ALL_DONE_JS, arg=PANEL, timeout=RUN_TIMEOUT_MS, polling=500)
    idle.wait_for(timeout=60_000)


def _close(page: Any, lab: Lab) -> None:
    """Close the notebook's tab without saving its outputs, and end its kernel."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    _menu(page, "File", "Close Tab")
    with contextlib.suppress(PlaywrightTimeout):  # "Save your work": the copy's outputs are not kept
        page.locator(".jp-Dialog button", has_text="Discard").click(timeout=5_000)
    page.locator(PANEL).wait_for(state="detached")
    lab.shut_down_kernels()


def _menu(page: Any, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(f"^{re.escape(item)}$")).first.click()


def _problems(page: Any) -> list[str]:
    """Cells that did not run, error and stderr outputs (JupyterLab shows tracebacks as stderr),
    and widgets that did not render, in the notebook on show."""
    prompts = page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    found = [f"cell {i + 1} did not run" for i, p in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", p.strip())]
    bad = page.locator(
        f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    )
    found += [bad.nth(i).inner_text()[:2000] for i in range(bad.count())]
    text = page.locator(PANEL).inner_text()
    found += [f"widget: {w}" for w in ("Error displaying widget", "Loading widget...") if w in text]
    return found


def _wait(page: Any, js: str, arg: Any, timeout: float, message: str) -> None:
    """Wait until ``js(arg)`` is true; fail with ``message`` when it is not within ``timeout`` ms."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(js, arg=arg, timeout=timeout, polling=100)
    except PlaywrightTimeout:
        pytest.fail(f"{message} within {timeout / 1000:.0f} s")


def _try_every_control(page: Any) -> list[str]:
    """Change every control of every view; returns what each change did. Fails on a control whose
    change shows no busy state, leaves a message in the status line or changes no output."""
    done: list[str] = []
    cells = page.locator(f"{PANEL} .jp-CodeCell:has(.widget-vbox)")
    assert cells.count() >= 1, "no widgets cell rendered a view"
    for c in range(cells.count()):
        cell = cells.nth(c)
        handle = cell.element_handle()
        controls = cell.locator(CONTROLS)
        inputs = cell.locator(".jupyter-widgets select, .jupyter-widgets input, .jupyter-widgets textarea")
        known = controls.locator("select, input, textarea").count()
        assert controls.count() >= 1 and inputs.count() == known, f"{inputs.count() - known} inputs of unknown controls"
        status = cell.locator(".widget-vbox > .widget-label").last
        for i in range(controls.count()):
            before = cell.evaluate(_OUTPUTS_JS)
            page.evaluate(_WATCH_JS, [handle, BUSY, _DISABLED])
            started = time.monotonic()
            what = _change(controls.nth(i))
            arg = [handle, BUSY, before, _DISABLED]
            _wait(page, _BUSY_OR_CHANGED_JS, arg, CHANGE_TIMEOUT_MS, f"{what}: neither a busy state nor a change")
            _wait(page, _SETTLED_JS, arg, CHANGE_TIMEOUT_MS, f"{what}: still busy")
            seen = page.evaluate("() => { window.__kpiBusy.observer.disconnect(); return window.__kpiBusy.seen; }")
            assert seen == {"text": True, "disabled": True}, f"{what}: no busy state ({seen})"
            assert status.inner_text().strip() == "", f"{what}: {status.inner_text()}"
            # the status line clears after the outputs were sent; give the browser a moment to draw them
            _wait(page, _CHANGED_JS, arg, 10_000, f"{what}: no output of the view changed")
            after = cell.evaluate(_OUTPUTS_JS)
            changed = [j for j, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
            done.append(f"{what} ({time.monotonic() - started:.1f} s): outputs {changed} of {len(after)} changed")
    return done


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_every_control_redraws(lab: Lab, lab_page: LabPage, name: str) -> None:
    page = lab_page.page
    del lab_page.errors[:]
    started = time.monotonic()
    try:
        _open_and_run(page, name)
        ran = time.monotonic() - started
        assert _problems(page) == []
        changes = _try_every_control(page)
        assert lab_page.errors == []
    except BaseException:
        print(f"JupyterLab's log ends:\n{lab.log.read_text()[-3000:]}")
        raise
    finally:
        _close(page, lab)
    print(f"\n{name}: opened and ran in {ran:.0f} s, controls in {time.monotonic() - started - ran:.0f} s")
    print("\n".join(f"  {line}" for line in changes))

"""Every notebook as a learner sees it: opened in JupyterLab in headless Chromium.

One JupyterLab server (127.0.0.1, free port, no token, no kernels) and one browser for all
notebooks; notebook windowing is off (JUPYTERLAB_SETTINGS_DIR) so every cell renders. Fails on
a Mermaid block not drawn, a broken or alt-less image, a MathJax error, Markdown syntax left in
the rendered text, a relative link to a missing file or heading, and Chinese drawn as boxes.

Needs the system Chromium (Debian: chromium, fonts-noto-cjk) and the Python package playwright
(no browser download). Skips without them, except under CI (CI=true, as .ci/run runs), where it
fails; a CI that does not install Chromium on purpose sets BROWSER_TEST=optional.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from notebook_sync import ROOT

NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WINDOW = {"width": 1400, "height": 900}
SETTLE_TIMEOUT_S = 90
MAX_IMAGE_HEIGHT = 900  # a laptop screen; tests/test_diagrams.py checks diagrams against 880 at 880 px wide


def _missing_requirement() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -r requirements.txt)"
    if not Path(chromium_path()).exists():
        return f"no Chromium at {chromium_path()} (Debian: apt-get install chromium fonts-noto-cjk; or set CHROMIUM)"
    return None


def chromium_path() -> str:
    """The system Chromium: $CHROMIUM, else the Debian package's."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_page():
    """A JupyterLab page in headless Chromium, served from the repository root."""
    reason = _missing_requirement()
    if reason:
        under_ci = os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}
        if under_ci and os.environ.get("BROWSER_TEST") != "optional":
            pytest.fail(f"browser test cannot run under CI: {reason} (set BROWSER_TEST=optional to skip it)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lab-") as tmp:
        tmp = Path(tmp)
        settings = tmp / "settings" / "@jupyterlab"
        # Render every cell, not only those near the viewport; no news or update checks (offline).
        (settings / "notebook-extension").mkdir(parents=True)
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"}), encoding="utf-8"
        )
        (settings / "apputils-extension").mkdir(parents=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8"
        )
        env = dict(
            os.environ,
            JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
            JUPYTER_DATA_DIR=str(tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        )
        port = _free_port()
        log = (tmp / "server.log").open("w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={ROOT}",
                "--expose-app-in-browser",
                # Rendering needs no kernel: allow none, so opening a notebook starts no process.
                "--KernelSpecManager.allowed_kernelspecs={'no-kernel'}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        pytest.fail("JupyterLab did not start:\n" + (tmp / "server.log").read_text()[-2000:])
                    time.sleep(0.3)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=WINDOW)
                page.goto(f"{url}/lab?reset")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=60_000)
                page.evaluate("() => window.jupyterapp.started")
                page.wait_for_selector(".jp-DirListing", timeout=60_000)
                yield page
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


# Opens a notebook through JupyterLab's own command and waits until its cells, images and math
# have stopped changing. Returns the panel's DOM id.
OPEN_JS = """
async (path) => {
  const app = window.jupyterapp;
  await app.commands.execute('application:close-all');
  const widget = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await widget.context.ready;
  return widget.id;
}
"""

STATE_JS = """
(id) => {
  const panel = document.getElementById(id);
  if (!panel) return null;
  for (const button of document.querySelectorAll('.jp-Dialog .jp-mod-accept')) button.click();
  const imgs = [...panel.querySelectorAll('img')];
  return JSON.stringify([
    panel.querySelectorAll('.jp-Cell').length,
    panel.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown').length,
    panel.querySelectorAll('mjx-container').length,
    panel.querySelectorAll('.jp-RenderedMermaid svg').length,
    imgs.length,
    imgs.filter((i) => i.complete).length,
    panel.querySelectorAll('.jp-RenderedMarkdown').length,
    panel.innerText.length,
  ]);
}
"""

# Everything the checks need, gathered from the rendered notebook in one pass.
INSPECT_JS = r"""
async (id) => {
  const panel = document.getElementById(id);
  const problems = [];
  const cellOf = (el) => {
    const cell = el.closest('.jp-Cell');
    return cell ? [...panel.querySelectorAll('.jp-Cell')].indexOf(cell) : -1;
  };
  const snippet = (s) => s.replace(/\s+/g, ' ').trim().slice(0, 80);

  // Mermaid blocks: JupyterLab draws ```mermaid as .jp-RenderedMermaid with an <svg>.
  for (const code of panel.querySelectorAll('.jp-RenderedMarkdown pre > code.language-mermaid')) {
    problems.push(['mermaid', cellOf(code), 'Mermaid block shown as code: ' + snippet(code.textContent)]);
  }
  // JupyterLab 4.6 shows a drawn diagram as an <img> (SVG data URL), a failed one with jp-mod-warning.
  for (const m of panel.querySelectorAll('.jp-RenderedMermaid')) {
    const img = m.querySelector('img');
    const drawn = m.querySelector('svg') || (img && img.naturalWidth > 0);
    if (!drawn || m.classList.contains('jp-mod-warning')) {
      problems.push(['mermaid', cellOf(m), 'Mermaid diagram not rendered: ' + snippet(m.textContent)]);
    }
  }

  // Images: loaded, and (in Markdown) described by alt text.
  const images = [];
  for (const img of panel.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push(['image', cellOf(img), 'broken image: ' + (img.getAttribute('src') || '').split('?')[0]]);
    }
    if (img.closest('.jp-MarkdownCell')) {
      // JupyterLab writes alt="Image" where the Markdown gave none (and on its own Mermaid images).
      const alt = img.getAttribute('alt') || '';
      if ((!alt.trim() || alt === 'Image') && !img.closest('.jp-RenderedMermaid')) {
        problems.push(['image', cellOf(img), 'image without alt text: ' + img.getAttribute('src').split('?')[0]]);
      }
      images.push({cell: cellOf(img), alt, src: img.currentSrc || img.src,
                   width: img.clientWidth, height: img.clientHeight, naturalWidth: img.naturalWidth});
    }
  }

  // MathJax: errors, and TeX left unprocessed.
  for (const err of panel.querySelectorAll('mjx-merror, .MathJax_Error')) {
    const message = err.getAttribute('data-mjx-error') || snippet(err.textContent);
    problems.push(['mathjax', cellOf(err), 'MathJax error: ' + message]);
  }
  // An undefined macro is not an error to MathJax: it is drawn as red text.
  for (const mtext of panel.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    problems.push(['mathjax', cellOf(mtext), 'undefined TeX macro: ' + snippet(mtext.textContent)]);
  }

  // Text of rendered Markdown outside code, math and diagrams: leftover Markdown syntax.
  const skip = 'code, pre, kbd, samp, mjx-container, svg, .jp-InternalAnchorLink, .jp-RenderedMermaid';
  const leftovers = [
    [/\*\*/, '**'], [/__\S/, '__'], [/```|~~~/, 'code fence'], [/\]\(/, ']('], [/!\[/, '!['],
    [/\$/, '$ (math not rendered)'], [/\\\(|\\\[/, '\\( or \\['], [/<\/?[a-zA-Z][^>]*>/, 'HTML tag as text'],
    [/\|\s*:?-{3,}/, 'table syntax'], [/^\s*#{1,6}\s/, 'heading syntax'], [/&[a-z]+;/, 'HTML entity'],
  ];
  for (const md of panel.querySelectorAll('.jp-RenderedMarkdown')) {
    const blocks = md.querySelectorAll('p, li, h1, h2, h3, h4, h5, h6, td, th, blockquote, dd, dt');
    for (const block of blocks) {
      let text = '';
      const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.parentElement.closest(skip)) text += node.textContent;
      }
      for (const [re, name] of leftovers) {
        if (re.test(text)) problems.push(['markdown', cellOf(block), `leftover Markdown (${name}): ` + snippet(text)]);
      }
    }
  }

  // Links: relative ones must point at an existing file (checked by the test) or heading.
  const links = [];
  for (const a of panel.querySelectorAll('.jp-RenderedMarkdown a[href]')) {
    if (a.classList.contains('jp-InternalAnchorLink')) continue;
    // JupyterLab resolves a relative href to the server's /files/ URL; headings carry data-jupyter-id.
    const raw = a.getAttribute('href');
    let anchorOk = true;
    if (raw.startsWith('#')) {
      const name = CSS.escape(decodeURIComponent(raw.slice(1)));
      anchorOk = !!panel.querySelector(`[id="${name}"], [data-jupyter-id="${name}"]`);
    }
    links.push({cell: cellOf(a), href: raw, resolved: a.href, anchorOk, text: snippet(a.textContent)});
  }

  // Glyphs: every character of the notebook's text, measured on a canvas in the font its
  // element uses, against a code point no font has. A box (.notdef) has the same width and
  // pixels for any missing character.
  const byFont = new Map();
  const addText = (font, text) => {
    if (!byFont.has(font)) byFont.set(font, new Set());
    for (const ch of text) if (ch.codePointAt(0) > 0x2e7f) byFont.get(font).add(ch);
  };
  const walker = document.createTreeWalker(panel, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (/[\u2e80-\u{3ffff}]/u.test(node.textContent)) {
      addText(getComputedStyle(node.parentElement).fontFamily, node.textContent);
    }
  }
  for (const img of panel.querySelectorAll('img[alt]')) {
    addText(getComputedStyle(img).fontFamily, img.getAttribute('alt'));
  }
  // Labels inside SVG images (diagrams), in the font family the SVG asks for.
  for (const img of panel.querySelectorAll('.jp-RenderedMarkdown img')) {
    if (!/\.svg(\?|$)/.test(img.src) || img.naturalWidth === 0) continue;
    const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(), 'image/svg+xml');
    const family = /font-family:\s*([^;}]+)/.exec(svg.documentElement.outerHTML);
    addText(family ? family[1] : 'serif', [...svg.querySelectorAll('text')].map((t) => t.textContent).join(''));
  }
  const size = 24;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 2 * size;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch) => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillText(ch, 4, size * 1.4);
    return [ctx.measureText(ch).width, ctx.getImageData(0, 0, canvas.width, canvas.height).data.join(',')];
  };
  const boxes = [];
  let measured = 0;
  for (const [font, chars] of byFont) {
    ctx.font = `${size}px ${font}`;
    const [missingWidth, missingPixels] = draw('\u{10FFFD}');
    const missing = [];
    for (const ch of chars) {
      measured += 1;
      const [w, px] = draw(ch);
      if (w === missingWidth && px === missingPixels) missing.push(ch);
    }
    if (missing.length) {
      const first = missing.slice(0, 12).map((ch) => `${ch} U+${ch.codePointAt(0).toString(16).toUpperCase()}`);
      boxes.push(`${missing.length} of ${chars.size} characters in font-family ${font}: ${first.join(', ')}`);
    }
  }
  return {problems, images, links, boxes, measured};
}
"""


def _settle(page, panel_id):
    """Wait until the notebook's DOM stops changing for a second and a half."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = page.evaluate(STATE_JS, panel_id)
        if state != last:
            last, stable_since = state, time.monotonic()
        elif state and time.monotonic() - stable_since > 1.5:
            return json.loads(state)
        time.sleep(0.25)
    pytest.fail(f"the notebook did not finish rendering within {SETTLE_TIMEOUT_S} s (last state {last})")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.relative_to(ROOT / "notebooks").as_posix() for p in NOTEBOOKS])
def test_notebook_renders_in_jupyterlab(lab_page, notebook):
    page = lab_page
    rel = notebook.relative_to(ROOT).as_posix()
    panel_id = page.evaluate(OPEN_JS, rel)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    state = _settle(page, panel_id)
    assert state[0] == len(cells), f"JupyterLab shows {state[0]} of {len(cells)} cells (windowing still on?)"
    result = page.evaluate(INSPECT_JS, panel_id)
    for _ in range(3):
        if not (result["problems"] or result["boxes"]):
            break
        # A busy machine can pause between rendering steps (MathJax loads on first use): look again.
        time.sleep(5)
        _settle(page, panel_id)
        result = page.evaluate(INSPECT_JS, panel_id)

    problems = [f"cell {cell}: {kind}: {text}" for kind, cell, text in result["problems"]]
    origin = page.evaluate("() => location.origin")
    for link in result["links"]:
        href, resolved = link["href"], urlsplit(link["resolved"])
        where = f"cell {link['cell']}: link: {href!r} ({link['text']})"
        if href.startswith("#"):
            if not link["anchorOk"]:
                problems.append(f"{where} names no heading in this notebook")
        elif f"{resolved.scheme}://{resolved.netloc}" == origin:
            local = unquote(re.sub(r"^/(files|lab/tree|tree)/", "", resolved.path))
            if not (ROOT / local).exists():
                problems.append(f"cell {link['cell']}: link ({link['text']}) to a missing file: {local}")
    for image in result["images"]:
        if image["height"] > MAX_IMAGE_HEIGHT:
            src = image["src"]
            name = "(a Mermaid diagram)" if src.startswith("data:") else src.split("?")[0].rsplit("/")[-1]
            problems.append(f"cell {image['cell']}: image {name} shown {image['width']}x{image['height']} px, too tall")
    problems += [f"drawn as boxes (no font has them): {box}" for box in result["boxes"]]
    assert result["measured"] > 0, "no Chinese characters measured; is the notebook empty?"
    assert not problems, f"{rel} in JupyterLab:\n" + "\n".join(dict.fromkeys(problems))

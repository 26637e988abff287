// Puppeteer (pulled in by @mermaid-js/mermaid-cli) must not download a browser at `npm ci`:
// tools/render_diagrams.py drives the system Chromium instead.
module.exports = { skipDownload: true };

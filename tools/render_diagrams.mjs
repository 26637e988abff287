// Renders Mermaid sources to SVG with @mermaid-js/mermaid-cli in one headless Chromium.
// Called by tools/render_diagrams.py, which reads the output and post-processes it:
//   node tools/render_diagrams.mjs JOB.json
// JOB.json: {"puppeteer": {...launch options...}, "mermaid": {...config...}, "files": [[in.mmd, out.svg], ...]}
import fs from "node:fs";
import puppeteer from "puppeteer";
import { renderMermaid } from "@mermaid-js/mermaid-cli";

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const browser = await puppeteer.launch(job.puppeteer);
let failed = 0;
try {
  for (const [source, target] of job.files) {
    const definition = fs.readFileSync(source, "utf8");
    try {
      // One id for every diagram: the SVGs are shown as separate images, never inlined together.
      const { data } = await renderMermaid(browser, definition, "svg", {
        mermaidConfig: job.mermaid,
        backgroundColor: "white",
        fontEmbed: false,
        svgId: "diagram",
      });
      fs.writeFileSync(target, data);
    } catch (error) {
      failed += 1;
      console.error(`${source}: ${error.message.split("\n")[0]}`);
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

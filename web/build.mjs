// Build web/dist/ from web/src/: one JavaScript and one CSS bundle with content hashes in
// their names, and the HTML shell that names them. Deterministic: the same sources give the
// same bytes, so CI can rebuild and compare with the committed output.
import * as esbuild from "esbuild";
import { copyFileSync, readFileSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: join(here, "src/main.ts") },
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outdir: dist,
  entryNames: "assets/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  metafile: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.endsWith(".js"));
const css = outputs.find((f) => f.endsWith(".css"));
if (!js || !css) throw new Error(`expected one .js and one .css output, got ${outputs.join(", ")}`);

const shell = readFileSync(join(here, "src/index.html"), "utf8")
  .replace("{{script}}", `assets/${js}`)
  .replace("{{style}}", `assets/${css}`);
writeFileSync(join(dist, "index.html"), shell);
copyFileSync(join(here, "src/favicon.svg"), join(dist, "favicon.svg"));
console.log(`web/dist: index.html, assets/${js}, assets/${css}`);

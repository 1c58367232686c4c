// Copies the pinned front-end libraries from node_modules into static/vendor,
// where go:embed picks them up. Run by `go generate ./ui` after npm ci; the
// output is committed, so neither step is needed to build PiCloud.
//
// CodeMirror is the one large library: its core, the Lua mode and two
// editing add-ons go into a single minified classic script (it installs
// window.CodeMirror). Preact, its hooks and htm are small ES modules copied
// as they are, with the bare "preact" import made relative so that the
// browser needs no import map (which the page's CSP would have to allow).
//
// RapiDoc, the API reference viewer at /docs, is one 863 KB script that is
// stored gzipped (218 KB): the binary carries the compressed bytes and
// ui.go serves them as they are to every browser (all send
// Accept-Encoding: gzip), unpacking them only for a client that does not.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "static", "vendor");

const version = (pkg) => JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
const read = (file) => readFileSync(join(modules, file), "utf8");
const dropSourceMap = (code) => code.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "licenses"), { recursive: true });

writeFileSync(join(out, "preact.mjs"), dropSourceMap(read("preact/dist/preact.module.js")));
writeFileSync(
  join(out, "preact-hooks.mjs"),
  dropSourceMap(read("preact/hooks/dist/hooks.module.js")).replace(/from\s*"preact"/g, 'from"./preact.mjs"'),
);
writeFileSync(join(out, "htm.mjs"), dropSourceMap(read("htm/dist/htm.module.js")));

const cmFiles = [
  "codemirror/lib/codemirror.js",
  "codemirror/mode/lua/lua.js",
  "codemirror/addon/edit/matchbrackets.js",
  "codemirror/addon/edit/closebrackets.js",
  "codemirror/addon/comment/comment.js",
];
const cm = await minify(Object.fromEntries(cmFiles.map((f) => [f, read(f)])), {
  compress: true,
  mangle: true,
  format: { comments: false },
});
const cmHeader =
  `/* CodeMirror ${version("codemirror")} (lib, mode/lua, addon/edit/matchbrackets, addon/edit/closebrackets, addon/comment/comment),\n` +
  ` * minified by ui/vendor.mjs. Copyright (c) by Marijn Haverbeke and others. MIT licence: licenses/codemirror.txt */\n`;
writeFileSync(join(out, "codemirror.min.js"), cmHeader + cm.code + "\n");
copyFileSync(join(modules, "codemirror/lib/codemirror.css"), join(out, "codemirror.css"));

// Level 9, and zlib writes no time stamp (mtime 0): the same input gives
// the same bytes, so a re-run leaves git clean.
writeFileSync(
  join(out, "rapidoc-min.js.gz"),
  gzipSync(dropSourceMap(read("rapidoc/dist/rapidoc-min.js")), { level: 9 }),
);

for (const pkg of ["preact", "htm", "codemirror"]) {
  copyFileSync(join(modules, pkg, "LICENSE"), join(out, "licenses", `${pkg}.txt`));
}
copyFileSync(join(modules, "rapidoc/LICENSE.txt"), join(out, "licenses", "rapidoc.txt"));
// Its bundle's own notices for the libraries inside it (lit, marked, ...).
copyFileSync(join(modules, "rapidoc/dist/rapidoc-min.js.LICENSE.txt"), join(out, "licenses", "rapidoc-bundled.txt"));
writeFileSync(
  join(out, "VERSIONS.txt"),
  ["preact", "htm", "codemirror", "rapidoc"].map((p) => `${p} ${version(p)}`).join("\n") + "\n",
);
console.log("vendored into", out);

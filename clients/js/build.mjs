// Bundles src/index.js with AutobahnJS into dist/broker.js (one ES module for browsers).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const shim = (name) => fileURLToPath(new URL(`./src/shims/${name}`, import.meta.url));
const shims = {
  name: "broker-shims",
  setup(b) {
    b.onResolve({ filter: /^msgpack5$/ }, () => ({ path: shim("msgpack5.cjs") }));
    b.onResolve({ filter: /^cbor$/ }, () => ({ path: shim("cbor.cjs") }));
    b.onResolve({ filter: /^(crypto-js|tweetnacl)$/ }, () => ({ path: shim("unused-auth.cjs") }));
    b.onResolve({ filter: /^(when(\/.*)?|fs)$/ }, () => ({ path: shim("unavailable.cjs") }));
  },
};

// what every bundle here shares: browser ESM, minified, autobahn's Node-only modules shimmed
const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  sourcemap: true,
  legalComments: "eof",
  // autobahn reads `global` (a Node name) at load time
  define: { global: "globalThis" },
  plugins: [shims],
  metafile: true,
  logLevel: "warning",
};

const result = await build({ ...common, entryPoints: ["src/index.js"], outfile: "dist/broker.js" });

const out = result.metafile.outputs["dist/broker.js"];
console.log(`dist/broker.js: ${(out.bytes / 1024).toFixed(1)} KiB`);

// The dashboard at `/` (index.html): dist/dashboard.js (+ .css, uPlot) takes the
// client from dist/broker.js; dist/dashboard-operator.js (autobahn, WAMP-CRA via
// WebCrypto) is loaded only for `?operator`.
const dashboard = await build({
  ...common,
  // the app lives in src/dashboard/; the bundles keep the names index.html loads
  entryPoints: { dashboard: "src/dashboard/app.js", "dashboard-operator": "src/dashboard/operator.js" },
  outdir: "dist",
});
for (const [file, { bytes }] of Object.entries(dashboard.metafile.outputs)) {
  if (!file.endsWith(".map")) console.log(`${file}: ${(bytes / 1024).toFixed(1)} KiB`);
}

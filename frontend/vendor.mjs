// Copies the pinned libraries the dashboard uses into service/api/static/vendor/ so the app
// serves them itself (no CDN). Reproducible: `npm ci && npm run vendor` from package-lock.json.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "service", "api", "static", "vendor");
mkdirSync(out, { recursive: true });
copyFileSync(join(here, "node_modules", "chart.js", "dist", "chart.umd.min.js"), join(out, "chart.umd.min.js"));
copyFileSync(join(here, "node_modules", "chart.js", "LICENSE.md"), join(out, "chart.js.LICENSE.md"));
console.log(`vendored chart.js into ${out}`);

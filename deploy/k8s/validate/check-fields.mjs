// Finds fields the API does not know (a misspelt or misplaced key) in Kubernetes objects, which the
// JSON schemas of validate-manifests.mjs let through: it writes each object as a TypeScript object
// literal typed with its kubernetes-models interface, and the compiler's excess-property check
// names every key the type lacks.
//   node check-fields.mjs FILE.yaml...
// Exits 1 naming each unknown field, 2 on bad usage.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check-fields.mjs FILE.yaml...");
  process.exit(2);
}
const packageOfGroup = (group) => {
  if (group === "monitoring.coreos.com") return "@kubernetes-models/prometheus-operator";
  if (group.endsWith(".istio.io")) return "@kubernetes-models/istio";
  return "kubernetes-models";
};
const lines = [];
const names = [];
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJSON();
    if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") continue;
    const slash = obj.apiVersion.indexOf("/");
    const module = `${packageOfGroup(slash < 0 ? "" : obj.apiVersion.slice(0, slash))}/${obj.apiVersion}/${obj.kind}`;
    const i = names.length;
    names.push(`${file}: ${obj.apiVersion} ${obj.kind}/${obj.metadata?.name ?? "?"}`);
    lines.push(`// object ${i}`);
    lines.push(`import type { I${obj.kind} as T${i} } from ${JSON.stringify(require.resolve(module).replace(/\.js$/, ""))};`);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`);
  }
}
const work = mkdtempSync(join(tmpdir(), "k8s-fields-"));
try {
  const source = join(work, "objects.ts");
  writeFileSync(source, lines.join("\n") + "\n");
  const tsc = spawnSync(process.execPath, [
    join(here, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "--strict", "--skipLibCheck",
    "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", source,
  ], { encoding: "utf8" });
  if (tsc.status === 0) {
    console.log(`${names.length} objects: no unknown fields`);
    process.exit(0);
  }
  // Map each error back to its object by the "// object N" comment above its line.
  const sourceLines = readFileSync(source, "utf8").split("\n");
  for (const line of tsc.stdout.split("\n").filter((l) => l.includes("error TS"))) {
    const m = line.match(/objects\.ts\((\d+),\d+\): error TS\d+: (.*)$/);
    if (!m) { console.error(line); continue; }
    let n = Number(m[1]) - 1;
    while (n > 0 && !sourceLines[n].startsWith("// object ")) n--;
    const object = names[Number(sourceLines[n].slice("// object ".length))];
    console.error(`${object}: ${m[2]}`);
  }
  process.exit(1);
} finally {
  rmSync(work, { recursive: true, force: true });
}

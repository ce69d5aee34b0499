// Writes the rule groups of every PrometheusRule in the given manifests as one Prometheus rules
// file, for `promtool check rules` (and `promtool test rules`).
//   node extract-rules.mjs OUT.yaml MANIFEST.yaml...
// Exits 1 when the manifests hold no PrometheusRule, 2 on bad usage.
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";

const [out, ...files] = process.argv.slice(2);
if (!out || files.length === 0) {
  console.error("usage: node extract-rules.mjs OUT.yaml MANIFEST.yaml...");
  process.exit(2);
}
const groups = [];
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJSON();
    if (obj?.apiVersion === "monitoring.coreos.com/v1" && obj.kind === "PrometheusRule") {
      groups.push(...(obj.spec?.groups ?? []));
    }
  }
}
if (groups.length === 0) {
  console.error(`extract-rules: no PrometheusRule groups in ${files.join(" ")}`);
  process.exit(1);
}
writeFileSync(out, stringify({ groups }));
console.log(`extract-rules: ${groups.length} groups, ${groups.reduce((n, g) => n + g.rules.length, 0)} rules -> ${out}`);

// Validates Kubernetes objects offline against the API schemas of kubernetes-models (Kubernetes),
// @kubernetes-models/prometheus-operator and @kubernetes-models/istio.
//   node validate-manifests.mjs FILE.yaml...
// Every document must be an object of a known apiVersion and kind that passes its schema: types,
// required fields, enums and formats. The packaged schemas accept fields they do not declare:
// check-fields.mjs finds those. Prints one line per object; exits 1 naming every
// invalid one, 2 on bad usage.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);

// apiVersion groups served by each package; the core group ("v1") has no group prefix.
const packageOfGroup = (group) => {
  if (group === "monitoring.coreos.com") return "@kubernetes-models/prometheus-operator";
  if (group.endsWith(".istio.io")) return "@kubernetes-models/istio";
  return "kubernetes-models";
};

function modelOf(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const path = `${packageOfGroup(group)}/${apiVersion}/${kind}`;
  try {
    return require(path)[kind];
  } catch {
    return undefined;
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate-manifests.mjs FILE.yaml...");
  process.exit(2);
}

let invalid = 0;
let valid = 0;
for (const file of files) {
  let docs;
  try {
    docs = parseAllDocuments(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`${file}: cannot read: ${e.message}`);
    invalid++;
    continue;
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      invalid++;
      continue;
    }
    const obj = doc.toJSON();
    if (obj === null || obj === undefined) continue;
    const name = `${obj.kind ?? "?"}/${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      console.error(`${file}: ${name}: no apiVersion or kind`);
      invalid++;
      continue;
    }
    const Model = modelOf(obj.apiVersion, obj.kind);
    if (!Model) {
      console.error(`${file}: ${name}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
      invalid++;
      continue;
    }
    // kustomize wraps a Secret's base64 values over several lines; the API server's decoder
    // skips the line breaks, the schema's "byte" format does not.
    if (obj.kind === "Secret" && obj.data && typeof obj.data === "object") {
      for (const key of Object.keys(obj.data)) {
        if (typeof obj.data[key] === "string") obj.data[key] = obj.data[key].replace(/\n/g, "");
      }
    }
    const problems = [];
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(e.message);
    }
    console.log(`${problems.length ? "INVALID" : "valid  "} ${obj.apiVersion} ${name}`);
    if (problems.length) {
      console.error(`${file}: ${obj.apiVersion} ${name}: ${problems.join("; ")}`);
      invalid++;
    } else {
      valid++;
    }
  }
}
console.log(`${valid} objects valid, ${invalid} invalid`);
process.exit(invalid > 0 ? 1 : 0);

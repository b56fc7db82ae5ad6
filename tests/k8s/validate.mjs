// Validates Kubernetes manifests (one or more YAML files, multi-document,
// e.g. the output of `kubectl kustomize`) against the Kubernetes API schemas
// (kubernetes-models) and the CRD schemas of the Prometheus operator and
// cert-manager. An object of a kind none of them knows is an error too, so
// nothing passes unchecked.
//
// Two checks per object: the JSON schema (types, required fields, formats),
// and unknown fields, which the API's schemas allow but an API server with
// strict field validation (kubectl apply's default) refuses: each object is
// written as a TypeScript object literal typed with its model's interface,
// and the TypeScript compiler reports every property the type does not
// have ("readinesProbe"), at any depth.
//
//   node validate.mjs rendered.yaml [more.yaml ...]
//
// Prints one line per object ("ok Kind name" or "error Kind name: what"),
// then a summary; exits 1 if any object is invalid, 2 on a usage or YAML
// error.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parseAllDocuments } from "yaml";

const HERE = dirname(fileURLToPath(import.meta.url));

// apiVersion group -> the module path that holds its models
const SOURCES = [
  [/^cert-manager\.io$|^acme\.cert-manager\.io$/, (g, v, k) => `@kubernetes-models/cert-manager/${g}/${v}/${k}`],
  [/^monitoring\.coreos\.com$/, (g, v, k) => `@kubernetes-models/prometheus-operator/${g}/${v}/${k}`],
  [/^$/, (g, v, k) => `kubernetes-models/${v}/${k}`],
  [/^[a-z0-9.]+$/, (g, v, k) => `kubernetes-models/${g}/${v}/${k}`],
];

async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind))
    throw new Error(`apiVersion and kind must be strings (got ${JSON.stringify(apiVersion)}, ${JSON.stringify(kind)})`);
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if (!/^v[0-9a-z]+$/.test(version)) throw new Error(`bad apiVersion ${apiVersion}`);
  for (const [re, path] of SOURCES) {
    if (!re.test(group)) continue;
    let mod;
    const spec = path(group, version, kind);
    try {
      mod = await import(spec);
    } catch (e) {
      throw new Error(`no schema for ${apiVersion} ${kind} (${e.code || e.message})`);
    }
    const cls = mod[kind];
    if (typeof cls !== "function") throw new Error(`no model class ${kind} in ${apiVersion}`);
    return { Model: cls, spec };
  }
  throw new Error(`no schema for ${apiVersion} ${kind}`);
}

// What the API server accepts although the schema's format is stricter:
// kustomize writes a long Secret value's base64 over several lines, and the
// API server's decoder (Go's encoding/base64) ignores line breaks.
function normalize(obj) {
  if (obj.apiVersion === "v1" && obj.kind === "Secret" && obj.data && typeof obj.data === "object") {
    for (const [k, v] of Object.entries(obj.data)) {
      if (typeof v === "string") obj.data[k] = v.replace(/[\r\n]/g, "");
    }
  }
}

function describe(err) {
  const list = err && Array.isArray(err.errors) ? err.errors : null;
  if (!list) return String(err && err.message ? err.message : err);
  return list.map((e) => `${e.instancePath || "/"} ${e.message}${e.params ? " " + JSON.stringify(e.params) : ""}`).join("; ");
}

// Unknown fields: one TypeScript declaration per object, one per line.
// Returns Map(index -> [messages]).
function unknownFields(typed) {
  const dir = mkdtempSync(join(HERE, ".check-"));
  try {
    const lines = typed.map(({ spec, kind, obj }, i) =>
      `import type { I${kind} as T${i} } from ${JSON.stringify(spec)}; ` +
      `export const o${i}: T${i} = ${JSON.stringify(obj)};`);
    const file = join(dir, "objects.ts");
    writeFileSync(file, lines.join("\n") + "\n");
    const program = ts.createProgram([file], {
      noEmit: true, strict: true, skipLibCheck: true, target: ts.ScriptTarget.ES2020,
      module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, types: [],
    });
    const found = new Map();
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
      const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      const key = line >= 0 && line < typed.length ? line : -1;
      if (!found.has(key)) found.set(key, []);
      found.get(key).push(text.length > 300 ? text.slice(0, 300) + "..." : text);
    }
    return found;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node validate.mjs FILE.yaml...");
    return 2;
  }
  const results = [], typed = [];
  for (const file of files) {
    const docs = parseAllDocuments(readFileSync(file, "utf8"), { prettyErrors: true });
    for (const doc of docs) {
      if (doc.errors.length) {
        console.error(`${file}: YAML error: ${doc.errors.map((e) => e.message).join("; ")}`);
        return 2;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;
      const name = obj && obj.metadata && obj.metadata.name;
      const what = `${obj && obj.kind} ${name}`;
      const r = { what, errors: [] };
      results.push(r);
      try {
        if (typeof obj !== "object" || Array.isArray(obj)) throw new Error("not an object");
        if (typeof name !== "string" || name === "") throw new Error("no metadata.name");
        const { Model, spec } = await modelFor(obj.apiVersion, obj.kind);
        normalize(obj);
        new Model(obj).validate();
        r.typed = typed.length;
        typed.push({ spec, kind: obj.kind, obj });
      } catch (e) {
        r.errors.push(describe(e));
      }
    }
  }
  const extra = typed.length ? unknownFields(typed) : new Map();
  let ok = 0, bad = 0;
  for (const r of results) {
    if (r.typed !== undefined && extra.has(r.typed)) r.errors.push(...extra.get(r.typed));
    if (r.errors.length) {
      console.log(`error ${r.what}: ${r.errors.join("; ")}`);
      bad++;
    } else {
      console.log(`ok ${r.what}`);
      ok++;
    }
  }
  if (extra.has(-1)) {
    console.log(`error (type check): ${extra.get(-1).join("; ")}`);
    bad++;
  }
  console.log(`${ok} valid, ${bad} invalid`);
  return bad ? 1 : ok ? 0 : 2;
}

process.exitCode = await main(process.argv.slice(2));

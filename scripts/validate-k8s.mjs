#!/usr/bin/env node
// Renders every kustomization under deploy/k8s (base and each overlay) with `kubectl kustomize`
// and validates each rendered object against the Kubernetes JSON schemas shipped by
// `kubernetes-models` (and `@kubernetes-models/prometheus-operator` for the ServiceMonitor CRD).
//
// Exit status: 0 when every object of every kustomization is valid, 1 otherwise (each problem is
// printed as "<kustomization>: <Kind>/<name>: <message>").
//
// Limits: the JSON schemas check types, enums and required fields, NOT unknown fields (the
// Kubernetes schemas allow additional properties), so a misspelt optional field passes here;
// test/deploy/k8s.test.ts asserts the fields that matter are actually present.
//
// Usage: node scripts/validate-k8s.mjs [kustomization dir ...]   (KUBECTL=/path/to/kubectl)
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseAllDocuments } from "yaml"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The kustomizations rendered when no argument is given. */
export const defaultKustomizations = ["deploy/k8s/base", "deploy/k8s/overlays/staging", "deploy/k8s/overlays/production"]

/**
 * apiVersion/kind -> module exporting the model class. Anything not listed here is an error,
 * so a new kind cannot slip through unvalidated: add it here (or to `skippedKinds` on purpose).
 */
const models = {
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "ConfigMap"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "Secret"],
  "v1/Service": ["kubernetes-models/v1/Service", "Service"],
  "v1/ServiceAccount": ["kubernetes-models/v1/ServiceAccount", "ServiceAccount"],
  "v1/Namespace": ["kubernetes-models/v1/Namespace", "Namespace"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  "batch/v1/Job": ["kubernetes-models/batch/v1/Job", "Job"],
  "autoscaling/v2/HorizontalPodAutoscaler": [
    "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
    "HorizontalPodAutoscaler"
  ],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models/policy/v1/PodDisruptionBudget", "PodDisruptionBudget"],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "NetworkPolicy"],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    "ServiceMonitor"
  ]
}

/** Kinds deliberately not schema-checked (none today). */
const skippedKinds = new Set([])

const kubectl = () => process.env.KUBECTL ?? "kubectl"

/** `kubectl kustomize <dir>` parsed into plain objects. Throws with kubectl's message on failure. */
export function render(dir) {
  const abs = path.resolve(repoRoot, dir)
  if (!existsSync(path.join(abs, "kustomization.yaml"))) {
    throw new Error(`${dir}: no kustomization.yaml`)
  }
  let out
  try {
    out = execFileSync(kubectl(), ["kustomize", abs], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  } catch (e) {
    if (e.code === "ENOENT") throw new Error(`kubectl not found (looked for "${kubectl()}"; set KUBECTL)`)
    throw new Error(`${dir}: kubectl kustomize failed: ${(e.stderr || e.message).toString().trim()}`)
  }
  const docs = parseAllDocuments(out)
  const objects = []
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${dir}: rendered YAML does not parse: ${doc.errors[0].message}`)
    const obj = doc.toJS()
    if (obj != null) objects.push(obj)
  }
  return objects
}

const label = (obj) => `${obj?.kind ?? "<no kind>"}/${obj?.metadata?.name ?? "<no name>"}`

/** Validates objects; returns a list of problems (empty when all are valid). */
export async function validate(objects) {
  const problems = []
  for (const obj of objects) {
    const key = `${obj.apiVersion}/${obj.kind}`
    if (skippedKinds.has(key)) continue
    const entry = models[key]
    if (!entry) {
      problems.push(`${label(obj)}: no schema known for ${key}; add it to the model map in scripts/validate-k8s.mjs`)
      continue
    }
    const [specifier, exportName] = entry
    const Model = (await import(specifier))[exportName]
    try {
      new Model(obj).validate()
    } catch (e) {
      const details = Array.isArray(e.errors)
        ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message}`).join("; ")
        : e.message
      problems.push(`${label(obj)}: ${details}`)
    }
  }
  return problems
}

/** Renders and validates each kustomization; returns { dir, objects, problems }[]. */
export async function renderAndValidate(dirs = defaultKustomizations) {
  const results = []
  for (const dir of dirs) {
    try {
      const objects = render(dir)
      const problems = objects.length === 0 ? ["rendered no objects"] : await validate(objects)
      results.push({ dir, objects, problems })
    } catch (e) {
      results.push({ dir, objects: [], problems: [e.message] })
    }
  }
  return results
}

async function main() {
  const dirs = process.argv.length > 2 ? process.argv.slice(2) : defaultKustomizations
  const results = await renderAndValidate(dirs)
  let failed = 0
  for (const { dir, objects, problems } of results) {
    if (problems.length === 0) {
      console.log(`ok   ${dir}: ${objects.length} objects valid (${objects.map(label).join(", ")})`)
    } else {
      failed++
      for (const p of problems) console.error(`FAIL ${dir}: ${p}`)
    }
  }
  if (failed > 0) {
    console.error(`${failed} of ${results.length} kustomization(s) invalid`)
    process.exit(1)
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main()
}

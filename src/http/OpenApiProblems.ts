import { problems, problemType, PROBLEM_CONTENT_TYPE } from "./Problem.js"

type Json = Record<string, unknown>

const problemSchema: Json = {
  type: "object",
  description: "RFC 9457 problem details",
  required: ["type", "title", "status", "detail", "code", "correlationId"],
  properties: {
    type: { type: "string", description: "`urn:inventory:problem:<code>`" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
    code: { type: "string", description: "Stable machine-readable code (API.md)" },
    correlationId: { type: ["string", "null"] }
  },
  additionalProperties: true
}

const validationErrors: Json = {
  type: "object",
  required: ["errors"],
  properties: {
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["path", "message"],
        properties: { path: { type: "string", description: "JSON Pointer into the request part" }, message: { type: "string" } }
      }
    }
  }
}

const resolve = (schema: Json | undefined, components: Json): Json | undefined =>
  typeof schema?.["$ref"] === "string" ? (components[(schema["$ref"] as string).split("/").pop()!] as Json | undefined) : schema

/** The error's own fields (its schema minus the internal `_tag`). */
const extras = (schema: Json | undefined, components: Json): Json | undefined => {
  const properties = { ...((resolve(schema, components)?.["properties"] as Json | undefined) ?? {}) }
  delete properties["_tag"]
  if (Object.keys(properties).length === 0) return undefined
  return { type: "object", properties }
}

/** One `code` a response can carry, with its title and the error's own fields. */
interface Refusal {
  readonly code: string
  readonly title: string
  readonly fields: Json | undefined
}

/** Every typed error is described `<code>: <title>` (domain/Errors.ts, http/Security.ts, http/Problem.ts). */
const CODE_AND_TITLE = /^([a-z][a-z0-9-]*): (.+)$/

/** Problems answered by the HTTP layer itself, for responses that have no typed error. */
const layerProblem = (status: number): Refusal | undefined => {
  const info = Object.values(problems).find((p) => p.status === status)
  return info === undefined ? undefined : { code: info.code, title: info.title, fields: status === 400 ? validationErrors : undefined }
}

/**
 * The refusals a response documents. Effect 4 puts each error's description (`<code>: <title>`) not
 * on its schema but on the response, joined with " | " in the order of the schemas (a repeated
 * description once): the codes come from there, an error's fields from its schema at the same place.
 */
const refusalsOf = (content: Json | undefined, status: number, components: Json, description: unknown): ReadonlyArray<Refusal> => {
  if (status === 400) return [layerProblem(400)!]
  const schemas = Object.values(content ?? {}).map((media) => (media as Json)["schema"] as Json | undefined)
  const alternatives = schemas.flatMap((schema) => ((schema?.["anyOf"] as Array<Json> | undefined) ?? [schema]))
  const parts = typeof description === "string" ? description.split(" | ") : []
  const aligned = parts.length === alternatives.length
  const refusals = parts.flatMap((part, i) => {
    const match = CODE_AND_TITLE.exec(part)
    if (!match) return []
    // The HTTP layer's errors describe themselves at length; their title is the one on the wire.
    const title = Object.values(problems).find((p) => p.code === match[1])?.title ?? match[2]!
    return [{ code: match[1]!, title, fields: aligned ? extras(alternatives[i], components) : undefined }]
  })
  if (refusals.length > 0) return refusals
  const fallback = layerProblem(status)
  return fallback ? [fallback] : []
}

/** Example strings for field names whose generic `<name>-1` would mislead. */
const EXAMPLE_STRINGS: Record<string, string> = {
  path: "/quantity",
  message: "Expected an integer greater than 0",
  requiredScope: "inventory:adjust",
  key: "5d0c2a8e-order-1-attempt"
}

const EXAMPLE_NUMBERS: Record<string, number> = { requested: 5, available: 2, expectedVersion: 3, currentVersion: 4, limit: 1_000_000 }

/** An example value of a schema, good enough to show a client the shape of a problem's fields. */
const exampleOf = (schema: Json | undefined, name: string, components: Json, depth = 0): unknown => {
  const resolved = resolve(schema, components) ?? {}
  if (Array.isArray(resolved["enum"])) return resolved["enum"][0]
  const type = resolved["type"]
  if (type === "integer" || type === "number") return EXAMPLE_NUMBERS[name] ?? 2
  if (type === "boolean") return true
  if (type === "array") return depth > 2 ? [] : [exampleOf(resolved["items"] as Json, name, components, depth + 1)]
  if (type === "object" || resolved["properties"] !== undefined) {
    // `detail` is the problem's own (its text is the example's), `_tag` never reaches the wire.
    const properties = Object.entries((resolved["properties"] as Json | undefined) ?? {}).filter(([key]) => key !== "_tag" && key !== "detail")
    return depth > 2 ? {} : Object.fromEntries(properties.map(([key, value]) => [key, exampleOf(value as Json, key, components, depth + 1)]))
  }
  if (Array.isArray(resolved["anyOf"])) return exampleOf(resolved["anyOf"][0] as Json, name, components, depth + 1)
  return EXAMPLE_STRINGS[name] ?? `${name.replace(/Id$/, "").replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}-1`
}

/** A complete problem body for one refusal: the status and code it is documented under. */
const exampleProblem = (refusal: Refusal, status: number, components: Json): Json => ({
  summary: `${status} ${refusal.code}`,
  value: {
    type: problemType(refusal.code),
    title: refusal.title,
    status,
    detail: `${refusal.title} (example)`,
    code: refusal.code,
    correlationId: "0b6f3c9e-1d2a-4c8b-9e7f-5a4d3c2b1a00",
    ...(refusal.fields ? (exampleOf(refusal.fields, "problem", components) as Json) : {})
  }
})

/** Two errors may share a code (a refusal as a whole and per line): one entry per code. */
const byCode = (refusals: ReadonlyArray<Refusal>) => refusals.filter((r, i) => refusals.findIndex((o) => o.code === r.code) === i)

const toProblem = (all: ReadonlyArray<Refusal>, status: number, components: Json): Json => {
  const extra = all.flatMap((r) => (r.fields ? [r.fields] : []))
  const refusals = byCode(all)
  // The status and the codes this response can carry, so a client can switch on `code` exhaustively.
  const narrowed = {
    type: "object",
    properties: { status: { type: "integer", enum: [status] }, code: { type: "string", enum: refusals.map((r) => r.code) } }
  }
  const parts = [{ $ref: "#/components/schemas/Problem" }, ...(refusals.length > 0 ? [narrowed] : [])]
  const schema = { allOf: extra.length === 0 ? parts : [...parts, extra.length === 1 ? extra[0] : { anyOf: extra }] }
  const examples = Object.fromEntries(refusals.map((r) => [r.code, exampleProblem(r, status, components)]))
  return { [PROBLEM_CONTENT_TYPE]: { schema, ...(refusals.length > 0 ? { examples } : {}) } }
}

/** `<code>: <title>` of every code, so the description lists them all, not only the first error's. */
const describe = (refusals: ReadonlyArray<Refusal>, fallback: unknown) =>
  refusals.length === 0 ? fallback : refusals.map((r) => `${r.code}: ${r.title}`).join("; ")

/** Every `$ref` below `node` through `rename` (component names are the last segment). */
const renameRefs = (node: unknown, rename: ReadonlyMap<string, string>): void => {
  if (Array.isArray(node)) {
    for (const item of node) renameRefs(item, rename)
  } else if (typeof node === "object" && node !== null) {
    const json = node as Json
    const ref = json["$ref"]
    if (typeof ref === "string") {
      const name = ref.split("/").pop()!
      const renamed = rename.get(name)
      if (renamed !== undefined) json["$ref"] = ref.slice(0, ref.length - name.length) + renamed
    }
    for (const value of Object.values(json)) renameRefs(value, rename)
  }
}

/**
 * Effect 4 names the component of a class's wire form `<Identifier>Encoded`; the published document
 * keeps the names of the schemas themselves (`StockLevel`, `Reservation`, ...), so clients generated
 * from it keep their type names. A name already taken is left as is.
 */
export const stableComponentNames = (spec: Json): Json => {
  const components = (spec["components"] as Json | undefined)?.["schemas"] as Json | undefined
  if (components === undefined) return spec
  const rename = new Map<string, string>()
  for (const name of Object.keys(components)) {
    const stable = /^(.+)Encoded$/.exec(name)?.[1]
    if (stable !== undefined && !(stable in components) && ![...rename.values()].includes(stable)) rename.set(name, stable)
  }
  const renamed: Json = {}
  for (const [name, schema] of Object.entries(components)) renamed[rename.get(name) ?? name] = schema
  ;(spec["components"] as Json)["schemas"] = renamed
  renameRefs(spec["paths"], rename)
  renameRefs(renamed, rename)
  return spec
}

/**
 * The generated document shows errors as their schema classes; on the wire every error is a
 * problem+json body (http/Problem.ts). This rewrites each 4xx/5xx response to say so.
 */
export const documentProblems = (spec: Json): Json => {
  const components = (((spec["components"] as Json | undefined)?.["schemas"] as Json | undefined) ?? {}) as Json
  for (const item of Object.values((spec["paths"] as Json | undefined) ?? {})) {
    for (const operation of Object.values(item as Json)) {
      const responses = (operation as Json)["responses"] as Json | undefined
      for (const [code, response] of Object.entries(responses ?? {})) {
        const status = Number(code)
        const r = response as Json
        // The probes answer 503 with their own bodies (dependency and loop states), not a problem.
        if (status < 400 || (status === 503 && ["health.ready", "health.live"].includes(String((operation as Json)["operationId"])))) continue
        const refusals = refusalsOf(r["content"] as Json | undefined, status, components, r["description"])
        // Keep a hand-written single-error description (it may say more than the title); of several
        // errors with one code, the last one's (the API-wide problem, declared outermost).
        if (byCode(refusals).length > 1) r["description"] = describe(byCode(refusals), r["description"])
        else if (typeof r["description"] === "string") r["description"] = r["description"].split(" | ").pop()
        // Request decoding failures have no schema of their own in Effect 4; their text as before.
        if (status === 400) r["description"] = "The request did not match the expected schema"
        r["content"] = toProblem(refusals, status, components)
      }
      if (responses && (operation as Json)["requestBody"] !== undefined) {
        responses["413"] = { description: "payload-too-large: the body exceeds BODY_LIMIT_BYTES", content: toProblem([layerProblem(413)!], 413, components) }
        responses["415"] = { description: "unsupported-media-type: the body is not application/json", content: toProblem([layerProblem(415)!], 415, components) }
      }
    }
  }
  const componentsOut = (spec["components"] ?? {}) as Json
  componentsOut["schemas"] = { ...components, Problem: problemSchema }
  // A 400 validation-failed problem on the wire (the body above), not its schema class. (Request
  // decoding failures have no schema in the document in Effect 4: HttpApiSchemaError is not one.)
  delete (componentsOut["schemas"] as Json)["InvalidData"]
  spec["components"] = componentsOut
  return spec
}

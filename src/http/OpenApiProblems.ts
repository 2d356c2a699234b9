import { problemType, PROBLEM_CONTENT_TYPE } from "./Problem.js"

type Json = Record<string, unknown>

const problemSchema: Json = {
  type: "object",
  description: "RFC 9457 problem details",
  required: ["type", "title", "status", "detail", "code", "correlationId"],
  properties: {
    type: { type: "string", example: problemType("variant-not-found") },
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

/** The error's own fields (its schema minus the internal `_tag`). */
const extras = (schema: Json | undefined, components: Json): Json | undefined => {
  if (!schema) return undefined
  const resolved = typeof schema["$ref"] === "string" ? (components[(schema["$ref"] as string).split("/").pop()!] as Json | undefined) : schema
  const properties = { ...((resolved?.["properties"] as Json | undefined) ?? {}) }
  delete properties["_tag"]
  if (Object.keys(properties).length === 0) return undefined
  return { type: "object", properties }
}

const toProblem = (content: Json | undefined, status: number, components: Json): Json => {
  const schemas = Object.values(content ?? {}).map((media) => (media as Json)["schema"] as Json | undefined)
  const alternatives = schemas.flatMap((schema) => ((schema?.["anyOf"] as Array<Json> | undefined) ?? [schema]))
  const extra = status === 400 ? [validationErrors] : alternatives.flatMap((s) => extras(s, components) ?? [])
  const schema =
    extra.length === 0
      ? { $ref: "#/components/schemas/Problem" }
      : { allOf: [{ $ref: "#/components/schemas/Problem" }, extra.length === 1 ? extra[0] : { anyOf: extra }] }
  return { [PROBLEM_CONTENT_TYPE]: { schema } }
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
        r["content"] = toProblem(r["content"] as Json | undefined, status, components)
      }
      if (responses && (operation as Json)["requestBody"] !== undefined) {
        responses["413"] = { description: "payload-too-large: the body exceeds BODY_LIMIT_BYTES", content: toProblem(undefined, 413, components) }
        responses["415"] = { description: "unsupported-media-type: the body is not application/json", content: toProblem(undefined, 415, components) }
      }
    }
  }
  const componentsOut = (spec["components"] ?? {}) as Json
  componentsOut["schemas"] = { ...components, Problem: problemSchema }
  delete (componentsOut["schemas"] as Json)["HttpApiDecodeError"]
  spec["components"] = componentsOut
  return spec
}

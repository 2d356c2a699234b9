import { OpenApi } from "effect/http-api"
import { writeFileSync } from "node:fs"
import { stringify } from "yaml"
import { InventoryApi } from "../http/Api.js"

/** The OpenAPI document of the HttpApi as checked-in YAML (a test compares the two). */
export const openApiYaml = () => stringify(OpenApi.fromApi(InventoryApi), { lineWidth: 0, aliasDuplicateObjects: false })

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  const target = process.argv[2] ?? "openapi/inventory-service.yaml"
  writeFileSync(target, openApiYaml())
  process.stdout.write(`wrote ${target}\n`)
}

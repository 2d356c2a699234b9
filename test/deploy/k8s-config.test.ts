// The manifests against the service's real configuration: every variable they set is one Config.ts
// reads (found by running the config with a recording ConfigProvider), their values pass the
// service's own validation, and the ports and probe paths are the ones the service serves.
import { Effect, ConfigProvider, Option } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { type K8sObject, render } from "../../scripts/validate-k8s.mjs"
import { InventoryApi } from "../../src/http/Api.js"
import { appConfig, type AppConfigShape } from "../../src/layers/Config.js"

/** Runs the service's config on `env`; returns the variable names it looked up and the result. */
const readConfig = (env: Record<string, string>) => {
  const names = new Set<string>()
  const base = ConfigProvider.fromMap(new Map(Object.entries(env))).flattened
  const recording = ConfigProvider.fromFlat(
    ConfigProvider.makeFlat({
      load: (path, primitive, split) => {
        names.add(path.join("."))
        return base.load(path, primitive, split)
      },
      enumerateChildren: (path) => base.enumerateChildren(path),
      patch: base.patch
    })
  )
  const result = Effect.runSync(Effect.either(Effect.withConfigProvider(appConfig, recording)))
  return { names, result }
}

/** Every variable name the service reads (the run on an empty environment visits them all). */
const knownNames = readConfig({}).names

/** GET paths of the HttpApi's health group. */
const healthPaths = Object.values(InventoryApi.groups["health"]!.endpoints)
  .filter((endpoint) => endpoint.method === "GET")
  .map((endpoint) => endpoint.path)

describe("Config.ts as seen by the test", () => {
  it("records every variable the service reads, and flags one it does not", () => {
    for (const name of ["PORT", "METRICS_PORT", "DATABASE_URL", "DATABASE_URL_FILE", "DB_POOL_MAX", "HISTORY_RETENTION_DAYS"]) {
      expect(knownNames).toContain(name)
    }
    expect(knownNames.has("DB_POOL_SIZE")).toBe(false)
    expect(healthPaths.sort()).toEqual(["/health/live", "/health/ready"])
  })
})

describe.each(["deploy/k8s/base", "deploy/k8s/overlays/production"])("%s matches Config.ts", (dir) => {
  let objects: Array<K8sObject>
  beforeAll(() => {
    objects = render(dir)
  }, 60_000)

  const configMap = () => objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "inventory-service-config")!.data ?? {}
  const containers = () =>
    objects.flatMap((o) =>
      o.kind === "Deployment" || o.kind === "Job"
        ? (o.spec.template.spec.containers as Array<any>).map((c) => ({ owner: `${o.kind}/${o.metadata.name}`, container: c }))
        : []
    )
  const api = () => containers().find((c) => c.owner === "Deployment/inventory-service")!.container

  it("sets only variables the service reads (ConfigMap, Deployment and Job env)", () => {
    const set = [
      ...Object.keys(configMap()).map((name) => `ConfigMap ${name}`),
      ...containers().flatMap(({ owner, container }) => (container.env ?? []).map((e: { name: string }) => `${owner} ${e.name}`))
    ]
    expect(set.length).toBeGreaterThan(10)
    expect(set.filter((entry) => !knownNames.has(entry.split(" ")[1]!))).toEqual([])
    // Every container that reads the config gets the ConfigMap.
    for (const { owner, container } of containers()) {
      expect(container.envFrom, owner).toContainEqual({ configMapRef: { name: "inventory-service-config" } })
    }
  })

  it("has ConfigMap values that pass the service's own validation", () => {
    const { result } = readConfig(configMap())
    expect(result._tag, result._tag === "Left" ? String(result.left) : "").toBe("Right")
  })

  it("opens the container port the service listens on and the metrics port it serves /metrics on", () => {
    const config = readConfig(configMap()).result
    if (config._tag === "Left") throw config.left
    const settings: AppConfigShape = config.right
    const ports = new Map((api().ports as Array<{ name: string; containerPort: number }>).map((p) => [p.name, p.containerPort]))
    expect(ports.get("http")).toBe(settings.port)
    expect(Option.getOrElse(settings.metricsPort, () => settings.port)).toBe(ports.get("metrics"))
  })

  it("probes paths that exist in the HttpApi's health group", () => {
    const c = api()
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      expect(healthPaths, probe).toContain(c[probe].httpGet.path)
    }
  })
})

// Renders deploy/k8s/base and deploy/k8s/overlays/production with `kubectl kustomize`, validates
// every object against the Kubernetes schemas (scripts/validate-k8s.mjs) and checks the promises
// the manifests make to the service: probes, shutdown budget, security, scaling, network, migration.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { type K8sObject, render, renderAndValidate, validate } from "../../scripts/validate-k8s.mjs"

type Rendered = { dir: string; objects: Array<K8sObject>; problems: Array<string> }

const BASE = "deploy/k8s/base"
const STAGING = "deploy/k8s/overlays/staging"
const PRODUCTION = "deploy/k8s/overlays/production"

let rendered: Map<string, Rendered>

beforeAll(async () => {
  rendered = new Map((await renderAndValidate([BASE, STAGING, PRODUCTION])).map((r) => [r.dir, r]))
}, 90_000)

/** The generated ConfigMap (inventory-service-config-<content hash>). */
const configMapOf = (objects: Array<K8sObject>) => {
  const found = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("inventory-service-config-"))
  expect(found).toHaveLength(1)
  return found[0]!
}

const only = (objects: Array<K8sObject>, kind: string, name?: string): K8sObject => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  expect(found, `exactly one ${kind}${name ? `/${name}` : ""}`).toHaveLength(1)
  return found[0]!
}

const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v)

describe.each([BASE, STAGING, PRODUCTION])("%s", (dir) => {
  const objects = () => rendered.get(dir)!.objects
  const deployment = () => only(objects(), "Deployment", "inventory-service")
  const podSpec = () => deployment().spec.template.spec
  const container = () => {
    const containers = podSpec().containers
    expect(containers).toHaveLength(1)
    return containers[0]
  }
  const config = () => configMapOf(objects()).data ?? {}

  it("renders and every object passes the Kubernetes schema validation", () => {
    expect(rendered.get(dir)!.problems).toEqual([])
    expect(objects().length).toBeGreaterThanOrEqual(9)
  })

  it("runs at least two replicas", () => {
    expect(deployment().spec.replicas).toBeGreaterThanOrEqual(2)
  })

  it("probes /health/live (liveness, startup) and /health/ready (readiness) on the container port named http", () => {
    const c = container()
    const http = c.ports.find((p: { name: string }) => p.name === "http")
    expect(http?.containerPort).toBe(Number(config()["PORT"]))
    expect(c.livenessProbe.httpGet).toMatchObject({ path: "/health/live", port: "http" })
    expect(c.readinessProbe.httpGet).toMatchObject({ path: "/health/ready", port: "http" })
    expect(c.startupProbe?.httpGet).toMatchObject({ path: "/health/live", port: "http" })
    // The startup probe, not the liveness probe, covers a slow boot.
    expect(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds).toBeGreaterThanOrEqual(30)
  })

  it("exposes /metrics on METRICS_PORT through a port named metrics, scraped by the ServiceMonitor", () => {
    const metrics = container().ports.find((p: { name: string }) => p.name === "metrics")
    expect(metrics?.containerPort).toBe(Number(config()["METRICS_PORT"]))
    const service = only(objects(), "Service", "inventory-service")
    expect(service.spec.ports.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["http", "metrics"]))
    const monitor = only(objects(), "ServiceMonitor", "inventory-service")
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics" })])
    expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true)
  })

  it("gives a terminating pod more time than preStop sleep + SHUTDOWN_GRACE_MS", () => {
    const preStop = container().lifecycle.preStop.exec.command
    expect(preStop).toEqual(["sleep", "5"])
    const graceMs = Number(config()["SHUTDOWN_GRACE_MS"] ?? 10_000)
    expect(graceMs).toBeGreaterThanOrEqual(10_000)
    const budgetMs = podSpec().terminationGracePeriodSeconds * 1000
    expect(budgetMs).toBeGreaterThan(graceMs + Number(preStop[1]) * 1000)
  })

  it("runs as non-root uid 1000 with a read-only root filesystem, no privilege escalation, no capabilities", () => {
    for (const [what, spec] of [
      ["api", podSpec()],
      ["migration", only(objects(), "Job").spec.template.spec]
    ] as const) {
      expect(spec.securityContext, what).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } })
      expect(spec.automountServiceAccountToken, what).toBe(false)
      for (const c of spec.containers) {
        expect(c.securityContext, what).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" }
        })
        const tmp = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/tmp")
        const volume = spec.volumes.find((v: { name: string }) => v.name === tmp?.name)
        expect(volume?.emptyDir, `${what}: /tmp is an emptyDir`).toBeDefined()
      }
    }
  })

  it("sets cpu and memory requests and limits, requests not above limits", () => {
    const { requests, limits } = container().resources
    for (const r of ["cpu", "memory"]) {
      expect(requests?.[r], `requests.${r}`).toBeDefined()
      expect(limits?.[r], `limits.${r}`).toBeDefined()
    }
    const cpu = (q: string | number) => (String(q).endsWith("m") ? parseFloat(String(q)) / 1000 : Number(q))
    const mem = (q: string) => parseFloat(q) * ({ Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[q.replace(/^[\d.]+/, "")] ?? 1)
    expect(cpu(requests.cpu)).toBeLessThanOrEqual(cpu(limits.cpu))
    expect(mem(requests.memory)).toBeLessThanOrEqual(mem(limits.memory))
  })

  // The alert promises "near the container limit": RSS under full load reaches about 490 MiB
  // (docs/performance.md), so a threshold taken from the memory request would fire in every busy hour.
  it("warns on memory at 80% of the container's memory limit (InventoryHighMemory)", () => {
    const rules = parse(readFileSync("deploy/observability/prometheus/inventory-service.rules.yml", "utf8")) as {
      groups: Array<{ rules: Array<{ record?: string; expr?: string }> }>
    }
    const threshold = rules.groups.flatMap((g) => g.rules).find((r) => r.record === "inventory:threshold:memory_bytes_warning")
    const bytes = Number(/^vector\((\d+)\)/.exec(String(threshold?.expr))?.[1])
    const mem = (q: string) => parseFloat(q) * ({ Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[q.replace(/^[\d.]+/, "")] ?? 1)
    expect(bytes).toBe(Math.floor(0.8 * mem(container().resources.limits.memory)))
  })

  it("reads secrets from files of the inventory-service-secrets Secret, never from plain values", () => {
    const c = container()
    const env = new Map<string, { value?: string }>(c.env.map((e: { name: string }) => [e.name, e]))
    for (const name of ["DATABASE_URL", "AMQP_URL", "AUTH_PUBLIC_KEY"]) {
      expect(env.has(name), `${name} set directly`).toBe(false)
      expect(config()[name], `${name} in the ConfigMap`).toBeUndefined()
      const file = env.get(`${name}_FILE`)?.value
      expect(file, `${name}_FILE`).toBeDefined()
      const mount = c.volumeMounts.find((m: { mountPath: string }) => file!.startsWith(m.mountPath + "/"))
      const volume = podSpec().volumes.find((v: { name: string }) => v.name === mount?.name)
      expect(volume?.secret?.secretName).toBe("inventory-service-secrets")
    }
    expect(objects().filter((o) => o.kind === "Secret")).toEqual([])
  })

  it("autoscales the Deployment on 70% CPU from at least 2 replicas", () => {
    const hpa = only(objects(), "HorizontalPodAutoscaler", "inventory-service")
    expect(hpa.apiVersion).toBe("autoscaling/v2")
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "inventory-service" })
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2)
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas)
    expect(hpa.spec.metrics).toContainEqual({
      type: "Resource",
      resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } }
    })
  })

  it("has a PodDisruptionBudget and a Service that select the API pods but not the migration pod", () => {
    const podLabels = deployment().spec.template.metadata.labels
    const jobLabels = only(objects(), "Job").spec.template.metadata.labels
    expect(matches(deployment().spec.selector.matchLabels, podLabels)).toBe(true)
    const pdb = only(objects(), "PodDisruptionBudget", "inventory-service")
    expect(pdb.spec.minAvailable ?? pdb.spec.maxUnavailable).toBeDefined()
    for (const selector of [pdb.spec.selector.matchLabels, only(objects(), "Service", "inventory-service").spec.selector]) {
      expect(matches(selector, podLabels)).toBe(true)
      expect(matches(selector, jobLabels)).toBe(false)
    }
  })

  it("has a NetworkPolicy: ingress from commerce peers and monitoring only, egress to DNS, PostgreSQL, RabbitMQ, OTLP only", () => {
    const policy = only(objects(), "NetworkPolicy", "inventory-service")
    expect(matches(policy.spec.podSelector.matchLabels, deployment().spec.template.metadata.labels)).toBe(true)
    expect(matches(policy.spec.podSelector.matchLabels, only(objects(), "Job").spec.template.metadata.labels)).toBe(true)
    expect(policy.spec.policyTypes).toEqual(expect.arrayContaining(["Ingress", "Egress"]))
    expect(policy.spec.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: { "app.kubernetes.io/part-of": "commerce" } } }],
        ports: [{ port: "http", protocol: "TCP" }]
      },
      {
        from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
        ports: [{ port: "metrics", protocol: "TCP" }]
      }
    ])
    const egress = policy.spec.egress.flatMap((rule: { ports: Array<{ port: number; protocol: string }> }) =>
      rule.ports.map((p) => `${p.port}/${p.protocol}`)
    )
    expect(new Set(egress)).toEqual(new Set(["53/UDP", "53/TCP", "5432/TCP", "5672/TCP", "4318/TCP"]))
  })

  it("runs the migrations once per release in a Job with the service image", () => {
    const job = only(objects(), "Job")
    const spec = job.spec.template.spec
    expect(spec.restartPolicy).toBe("Never")
    expect(spec.containers).toHaveLength(1)
    expect(spec.containers[0].command).toEqual(["node", "dist/src/bin/migrate.js"])
    expect(spec.containers[0].image).toBe(container().image)
    expect(spec.containers[0].env).toContainEqual(expect.objectContaining({ name: "DATABASE_URL_FILE" }))
    expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(1)
  })

  it("gives the migration Job the database secret only: one *_FILE variable, one projected key", () => {
    const spec = only(objects(), "Job").spec.template.spec
    expect(spec.containers[0].env.map((e: { name: string }) => e.name)).toEqual(["DATABASE_URL_FILE"])
    const secretVolumes = spec.volumes.filter((v: { secret?: unknown }) => v.secret !== undefined)
    expect(secretVolumes).toHaveLength(1)
    expect(secretVolumes[0].secret.items).toEqual([{ key: "database-url", path: "database-url" }])
  })

  it("points the Deployment and the Job at the generated ConfigMap, whose name carries its content hash", () => {
    const name = configMapOf(objects()).metadata.name
    expect(name).toMatch(/^inventory-service-config-[a-z0-9]{10}$/)
    for (const workload of [deployment(), only(objects(), "Job")]) {
      expect(workload.spec.template.spec.containers[0].envFrom).toEqual([{ configMapRef: { name } }])
    }
  })
})

describe("a configuration change", () => {
  it("renames the ConfigMap the pod template refers to, so the Deployment rolls its pods", () => {
    const copy = mkdtempSync(path.join(tmpdir(), "k8s-"))
    try {
      cpSync("deploy/k8s", copy, { recursive: true })
      const envFile = path.join(copy, "overlays/production/config.env")
      writeFileSync(envFile, readFileSync(envFile, "utf8").replace("LOG_LEVEL=info", "LOG_LEVEL=debug"))
      const refOf = (objects: Array<K8sObject>) =>
        objects.find((o) => o.kind === "Deployment")!.spec.template.spec.containers[0].envFrom[0].configMapRef.name
      const before = refOf(rendered.get(PRODUCTION)!.objects)
      const after = refOf(render(path.join(copy, "overlays/production")))
      expect(after).not.toBe(before)
      expect(after).toMatch(/^inventory-service-config-/)
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })
})

describe("staging overlay", () => {
  it("runs the production shape, smaller, in its own namespace, named staging in telemetry", () => {
    const objects = rendered.get(STAGING)!.objects
    const deployment = only(objects, "Deployment", "inventory-service")
    expect(deployment.spec.replicas).toBe(2)
    const hpa = only(objects, "HorizontalPodAutoscaler")
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([2, 4])
    for (const o of objects) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe("commerce-staging")
    expect(deployment.spec.template.spec.containers[0].image).toMatch(/^[\w.-]+\/[\w./-]+:[\w.-]+$|@sha256:/)
    const data = configMapOf(objects).data ?? {}
    expect(data["DEPLOYMENT_ENVIRONMENT"]).toBe("staging")
    expect(data["AUTH_ISSUER"]).not.toBe(configMapOf(rendered.get(PRODUCTION)!.objects).data?.["AUTH_ISSUER"])
  })
})

describe("production overlay", () => {
  it("runs 3 replicas, scales between 3 and 20, in its own namespace, with a registry image", () => {
    const objects = rendered.get(PRODUCTION)!.objects
    const deployment = only(objects, "Deployment", "inventory-service")
    expect(deployment.spec.replicas).toBe(3)
    const hpa = only(objects, "HorizontalPodAutoscaler")
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([3, 20])
    for (const o of objects) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe("commerce")
    expect(deployment.spec.template.spec.containers[0].image).toMatch(/^[\w.-]+\/[\w./-]+:[\w.-]+$|@sha256:/)
    expect(configMapOf(objects).data?.["AUTH_ISSUER"]).not.toBe("inventory-dev")
    expect(configMapOf(objects).data?.["DEPLOYMENT_ENVIRONMENT"]).toBe("production")
  })
})

describe("the validator itself", () => {
  it("rejects an object that breaks the schema and a kind it has no schema for", async () => {
    const problems = await validate([
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "broken" },
        spec: {
          replicas: "two",
          selector: { matchLabels: { a: "b" } },
          template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: "http" }] }] } }
        }
      },
      { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name: "no-spec-types" }, spec: { maxUnavailable: { x: 1 } } },
      { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }
    ])
    expect(problems).toEqual([
      expect.stringMatching(/^Deployment\/broken: .*\/spec\/replicas must be integer.*containerPort must be integer/),
      expect.stringMatching(/^PodDisruptionBudget\/no-spec-types: /),
      expect.stringMatching(/^Widget\/w: no schema known/)
    ])
  })
})

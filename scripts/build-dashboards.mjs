#!/usr/bin/env node
// Writes the Grafana dashboards of deploy/observability/dashboards from the compact definitions
// below (a test checks the committed JSON matches). Edit here, run `node scripts/build-dashboards.mjs`.
// Every query uses only the service's own metrics (docs/observability.md) plus `up`,
// kube-state-metrics and RabbitMQ's Prometheus plugin where noted; `$job` selects the scrape job,
// `$instance` one or all pods, `$rabbitmq_job` (Message Broker only) the broker's scrape job.
import { writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../deploy/observability/dashboards")
const sel = 'job="$job", instance=~"$instance"'

const ts = (title, targets, unit = "short", extra = {}) => ({ type: "timeseries", title, unit, targets, ...extra })
const stat = (title, expr, unit = "short") => ({ type: "stat", title, unit, targets: [{ expr, legend: title }] })
const t = (expr, legend) => ({ expr, legend })
// RabbitMQ's own metrics (rabbitmq_prometheus plugin, per-object: `/metrics/per-object` or
// `prometheus.return_per_object_metrics = true`), limited to this service's queues.
const rmq = 'job="$rabbitmq_job"'
const ourQueues = `${rmq}, queue=~"inventory-service\\..*|inventory\\..*"`

const dashboards = {
  "inventory-service-overview": {
    title: "Inventory Service / Overview",
    panels: [
      stat("Instances up", `sum(up{job="$job"})`),
      stat("Requests/s", `sum(rate(inventory_http_requests_total{${sel}}[5m]))`, "reqps"),
      stat("5xx ratio", `sum(rate(inventory_http_requests_total{${sel}, status_class="5xx"}[5m])) / clamp_min(sum(rate(inventory_http_requests_total{${sel}}[5m])), 1e-9)`, "percentunit"),
      stat("p99 latency", `histogram_quantile(0.99, sum by (le) (rate(inventory_http_request_duration_seconds_bucket{${sel}}[5m])))`, "s"),
      ts("Requests by status class", [t(`sum by (status_class) (rate(inventory_http_requests_total{${sel}}[5m]))`, "{{status_class}}")], "reqps"),
      ts("Latency p50 / p95 / p99", [0.5, 0.95, 0.99].map((q) => t(`histogram_quantile(${q}, sum by (le) (rate(inventory_http_request_duration_seconds_bucket{${sel}}[5m])))`, `p${q * 100}`)), "s"),
      ts("CPU (cores) by instance", [t(`rate(process_cpu_seconds_total{${sel}}[5m])`, "{{instance}}")], "short"),
      ts("Memory by instance", [t(`process_resident_memory_bytes{${sel}}`, "rss {{instance}}"), t(`nodejs_heap_size_used_bytes{${sel}}`, "heap {{instance}}")], "bytes"),
      ts("Event-loop lag p99", [t(`nodejs_eventloop_lag_p99_seconds{${sel}}`, "{{instance}}")], "s"),
      ts("Restarts (kube-state-metrics)", [t(`increase(kube_pod_container_status_restarts_total{container="inventory-service"}[1h])`, "{{pod}}")])
    ]
  },
  "inventory-service-api": {
    title: "Inventory Service / API performance",
    panels: [
      ts("Requests/s by route", [t(`sum by (route, method) (rate(inventory_http_requests_total{${sel}}[5m]))`, "{{method}} {{route}}")], "reqps"),
      ts("Requests/s by status code", [t(`sum by (status) (rate(inventory_http_requests_total{${sel}}[5m]))`, "{{status}}")], "reqps"),
      ts("Refusals and errors by route and code (4xx, 5xx)", [t(`sum by (method, route, status) (rate(inventory_http_requests_total{${sel}, status_class=~"4xx|5xx"}[5m]))`, "{{status}} {{method}} {{route}}")], "reqps"),
      ts("Error ratio by route (4xx, 5xx)", [
        t(`sum by (route) (rate(inventory_http_requests_total{${sel}, status_class="5xx"}[5m])) / clamp_min(sum by (route) (rate(inventory_http_requests_total{${sel}}[5m])), 1e-9)`, "5xx {{route}}"),
        t(`sum by (route) (rate(inventory_http_requests_total{${sel}, status_class="4xx"}[5m])) / clamp_min(sum by (route) (rate(inventory_http_requests_total{${sel}}[5m])), 1e-9)`, "4xx {{route}}")
      ], "percentunit"),
      ts("p95 latency by route", [t(`histogram_quantile(0.95, sum by (route, le) (rate(inventory_http_request_duration_seconds_bucket{${sel}}[5m])))`, "{{route}}")], "s"),
      ts("p99 latency by route", [t(`histogram_quantile(0.99, sum by (route, le) (rate(inventory_http_request_duration_seconds_bucket{${sel}}[5m])))`, "{{route}}")], "s"),
      ts("Average latency by route", [t(`sum by (route) (rate(inventory_http_request_duration_seconds_sum{${sel}}[5m])) / clamp_min(sum by (route) (rate(inventory_http_request_duration_seconds_count{${sel}}[5m])), 1e-9)`, "{{route}}")], "s")
    ]
  },
  "inventory-service-kpis": {
    title: "Inventory Service / Inventory KPIs",
    panels: [
      ts("Stock updates/s by type", [t(`sum by (type) (rate(inventory_stock_updates_total{${sel}}[5m]))`, "{{type}}")], "ops"),
      ts("Reservations/s by outcome", [t(`sum by (outcome) (rate(inventory_reservations_total{${sel}}[5m]))`, "{{outcome}}")], "ops"),
      stat("Reservation refusal ratio (15 min)", `sum(increase(inventory_reservations_total{${sel}, outcome="refused"}[15m])) / clamp_min(sum(increase(inventory_reservations_total{${sel}, outcome=~"created|refused"}[15m])), 1e-9)`, "percentunit"),
      ts("Status changes/h by new status", [t(`sum by (new_status) (increase(inventory_stock_status_changes_total{${sel}}[1h]))`, "{{new_status}}")]),
      stat("Went OUT_OF_STOCK (24 h)", `sum(increase(inventory_stock_status_changes_total{${sel}, new_status="OUT_OF_STOCK"}[24h]))`),
      ts("Events published/s by type", [t(`sum by (event_type) (rate(inventory_events_published_total{${sel}}[5m]))`, "{{event_type}}")], "ops")
    ]
  },
  "inventory-service-database": {
    title: "Inventory Service / Database",
    panels: [
      ts("Pool connections by state", [t(`sum by (state) (inventory_db_pool_connections{${sel}})`, "{{state}}"), t(`sum(inventory_db_pool_max_connections{${sel}})`, "max")]),
      ts("Pool saturation by instance", [t(`inventory_db_pool_connections{${sel}, state="in_use"} / inventory_db_pool_max_connections{${sel}}`, "{{instance}}")], "percentunit"),
      ts("Callers waiting for a connection", [t(`inventory_db_pool_connections{${sel}, state="waiting"}`, "{{instance}}")]),
      ts("Query latency p50 / p95 / p99", [0.5, 0.95, 0.99].map((q) => t(`histogram_quantile(${q}, sum by (le) (rate(inventory_db_query_duration_seconds_bucket{${sel}}[5m])))`, `p${q * 100}`)), "s"),
      ts("Queries/s", [t(`sum(rate(inventory_db_query_duration_seconds_count{${sel}}[5m]))`, "queries")], "ops")
    ]
  },
  "inventory-service-messaging": {
    title: "Inventory Service / Messaging",
    panels: [
      ts("Outbox pending rows", [t(`max(inventory_outbox_pending_rows{${sel}})`, "pending")]),
      ts("Oldest unpublished row age", [t(`max(inventory_outbox_oldest_pending_age_seconds{${sel}})`, "age")], "s"),
      ts("Commit-to-confirm latency p50 / p99", [0.5, 0.99].map((q) => t(`histogram_quantile(${q}, sum by (le) (rate(inventory_outbox_publish_latency_seconds_bucket{${sel}}[5m])))`, `p${q * 100}`)), "s"),
      ts("Published/s by event type", [t(`sum by (event_type) (rate(inventory_events_published_total{${sel}}[5m]))`, "{{event_type}}")], "ops"),
      ts("Relay failures and parked rows", [t(`sum(increase(inventory_outbox_publish_failures_total{${sel}}[5m]))`, "failures"), t(`sum(increase(inventory_outbox_parked_total{${sel}}[5m]))`, "parked")]),
      ts("Consumed/s by event type and outcome", [t(`sum by (event_type, outcome) (rate(inventory_events_consumed_total{${sel}}[5m]))`, "{{event_type}} {{outcome}}")], "ops"),
      ts("Dead-lettered by queue", [t(`sum by (queue) (increase(inventory_messages_dead_lettered_total{${sel}}[15m]))`, "{{queue}}")])
    ]
  },
  // The broker as RabbitMQ itself reports it, beside what the service measures of it.
  "inventory-service-broker": {
    title: "Inventory Service / Message Broker",
    brokerJob: true,
    panels: [
      stat("Dead-letter queue depth", `sum(rabbitmq_queue_messages_ready{${rmq}, queue="inventory.dead-letter"})`),
      stat("Unrouted queue depth", `sum(rabbitmq_queue_messages_ready{${rmq}, queue="inventory.unrouted"})`),
      stat("Consumers on our queues", `sum(rabbitmq_queue_consumers{${rmq}, queue=~"inventory-service\\..*"})`),
      stat("Broker alarms (memory, disk)", `max(rabbitmq_alarms_memory_used_watermark{${rmq}}) + max(rabbitmq_alarms_free_disk_space_watermark{${rmq}})`),
      ts("Queue depth: ready by queue", [t(`sum by (queue) (rabbitmq_queue_messages_ready{${ourQueues}})`, "{{queue}}")]),
      ts("Queue depth: unacknowledged by queue", [t(`sum by (queue) (rabbitmq_queue_messages_unacked{${ourQueues}})`, "{{queue}}")]),
      ts("Consumers by queue", [t(`sum by (queue) (rabbitmq_queue_consumers{${ourQueues}})`, "{{queue}}")]),
      ts("Broker publish / deliver / ack rates", [
        t(`sum(rate(rabbitmq_global_messages_received_total{${rmq}}[5m]))`, "published (received)"),
        t(`sum(rate(rabbitmq_global_messages_confirmed_total{${rmq}}[5m]))`, "confirmed to publishers"),
        t(`sum(rate(rabbitmq_global_messages_delivered_total{${rmq}}[5m]))`, "delivered"),
        t(`sum(rate(rabbitmq_global_messages_acknowledged_total{${rmq}}[5m]))`, "acknowledged"),
        t(`sum(rate(rabbitmq_global_messages_unroutable_returned_total{${rmq}}[5m]))`, "unroutable, returned")
      ], "ops"),
      ts("Dead-letter queue: broker depth vs service's dead-lettering", [
        t(`sum(rabbitmq_queue_messages_ready{${rmq}, queue="inventory.dead-letter"})`, "depth (broker)"),
        t(`sum(increase(inventory_messages_dead_lettered_total{${sel}}[15m]))`, "dead-lettered / 15 min (service)")
      ]),
      ts("Events published and consumed (service)", [
        t(`sum(rate(inventory_events_published_total{${sel}}[5m]))`, "published (service)"),
        t(`sum(rate(inventory_events_consumed_total{${sel}}[5m]))`, "consumed (service)")
      ], "ops"),
      ts("Connections and channels", [t(`sum(rabbitmq_connections{${rmq}})`, "connections"), t(`sum(rabbitmq_channels{${rmq}})`, "channels")]),
      ts("Outbox backlog (service)", [t(`max(inventory_outbox_pending_rows{${sel}})`, "pending rows")])
    ]
  }
}

const grafanaPanel = (panel, index) => {
  const width = panel.type === "stat" ? 6 : 12
  return {
    id: index + 1,
    type: panel.type,
    title: panel.title,
    datasource: { type: "prometheus", uid: "${datasource}" },
    gridPos: { h: panel.type === "stat" ? 4 : 8, w: width, x: 0, y: index * 8 },
    fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
    options: panel.type === "stat" ? { reduceOptions: { calcs: ["lastNotNull"] } } : { legend: { displayMode: "list", placement: "bottom" } },
    targets: panel.targets.map((target, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: { type: "prometheus", uid: "${datasource}" },
      expr: target.expr,
      legendFormat: target.legend
    }))
  }
}

/** Lays panels out left to right, two per row (four for stats). */
const layout = (panels) => {
  let x = 0
  let y = 0
  let rowHeight = 0
  return panels.map((panel) => {
    const { w, h } = panel.gridPos
    if (x + w > 24) {
      x = 0
      y += rowHeight
      rowHeight = 0
    }
    const placed = { ...panel, gridPos: { h, w, x, y } }
    x += w
    rowHeight = Math.max(rowHeight, h)
    return placed
  })
}

export const buildDashboards = () =>
  Object.fromEntries(
    Object.entries(dashboards).map(([uid, definition]) => [
      `${uid}.json`,
      {
        uid,
        title: definition.title,
        tags: ["inventory-service"],
        schemaVersion: 39,
        version: 1,
        editable: true,
        refresh: "30s",
        time: { from: "now-6h", to: "now" },
        timezone: "utc",
        templating: {
          list: [
            { name: "datasource", type: "datasource", query: "prometheus", label: "Prometheus" },
            {
              name: "job",
              type: "custom",
              query: "inventory-service",
              current: { text: "inventory-service", value: "inventory-service" },
              label: "Scrape job"
            },
            {
              name: "instance",
              type: "query",
              datasource: { type: "prometheus", uid: "${datasource}" },
              query: 'label_values(up{job="$job"}, instance)',
              includeAll: true,
              multi: true,
              allValue: ".*",
              current: { text: "All", value: "$__all" },
              label: "Instance"
            },
            ...(definition.brokerJob
              ? [
                  {
                    name: "rabbitmq_job",
                    type: "custom",
                    query: "rabbitmq",
                    current: { text: "rabbitmq", value: "rabbitmq" },
                    label: "RabbitMQ scrape job"
                  }
                ]
              : [])
          ]
        },
        links: [{ title: "Inventory dashboards", type: "dashboards", tags: ["inventory-service"], asDropdown: true }],
        panels: layout(definition.panels.map(grafanaPanel))
      }
    ])
  )

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, dashboard] of Object.entries(buildDashboards())) {
    writeFileSync(path.join(outDir, file), JSON.stringify(dashboard, null, 2) + "\n")
    console.log(`wrote deploy/observability/dashboards/${file}`)
  }
}

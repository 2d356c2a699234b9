import { allocateLines, availableAt, type LocationStockRow } from "../../src/domain/Allocation.js"
import type { Answer } from "./harness.js"

/**
 * A small in-memory statement of the stock and reservation rules of API.md / EVENTS.md (with the
 * locations extension), written independently of src/ except for the pure allocation rule
 * (src/domain/Allocation.ts), which is the spec of where reservations draw from: what each operation
 * answers, how stock moves per location, which history entries and events it writes.
 */
export interface ModelLine {
  readonly variantId: string
  readonly quantity: number
}
export interface ModelAllocation {
  readonly locationId: string
  readonly quantity: number
}
/** A stored line: where its quantity is held, in location-id order. */
export interface ModelHeldLine extends ModelLine {
  readonly allocations: ReadonlyArray<ModelAllocation>
}
/** v1 calls act on the location `default` (API.md "Locations"). */
export const DEFAULT_LOCATION = "default"
export interface ModelLocation {
  name: string
  priority: number
  active: boolean
}
export interface ModelRow {
  onHand: number
  reserved: number
  safetyStock: number
  /** The location row's own version: +1 on every change of onHand, reserved or safetyStock. */
  version: number
}
interface ModelVariant {
  version: number
  threshold: number
  /** Where the variant is stocked. */
  readonly rows: Map<string, ModelRow>
}
interface ModelReservation {
  readonly orderId: string
  status: "ACTIVE" | "COMMITTED" | "RELEASED" | "EXPIRED"
  readonly lines: ReadonlyArray<ModelHeldLine>
  readonly expiresAt: number
  readonly createdAt: number
  updatedAt: number
}
export interface ModelHistory {
  readonly variantId: string
  readonly locationId: string
  readonly type: string
  readonly onHandChange: number
  readonly reservedChange: number
  readonly onHandAfter: number
  readonly reservedAfter: number
  readonly orderId: string | null
}
export interface ModelEvent {
  readonly eventType: string
  readonly aggregateId: string
  readonly data: unknown
}
/** What an HTTP call answered, as far as a model states it: status, and `code` or the body's stated fields. */
export interface HttpAnswer {
  readonly status: number
  readonly body: unknown
}
export type AdjustType = "PURCHASE" | "SALE" | "RECOUNT"
export interface BulkItem {
  readonly variantId: string
  readonly type: AdjustType
  readonly quantity: number
  readonly locationId?: string
}

const statusOf = (available: number, threshold: number) =>
  available <= 0 ? "OUT_OF_STOCK" : available <= threshold ? "LOW_STOCK" : "IN_STOCK"

const iso = (millis: number) => new Date(millis).toISOString()

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

const problem = (status: number, code: string): HttpAnswer => ({ status, body: { code } })

export class Model {
  readonly variants = new Map<string, ModelVariant>()
  readonly reservations = new Map<string, ModelReservation>()
  readonly locations = new Map<string, ModelLocation>([[DEFAULT_LOCATION, { name: "Default", priority: 0, active: true }]])
  /** History entries and events written since the last check. */
  history: Array<ModelHistory> = []
  events: Array<ModelEvent> = []
  constructor(public now: number) {}

  /** The variant's totals: sums over its rows, `available` over the active locations only. */
  totals(variantId: string) {
    const v = this.variants.get(variantId)!
    let onHand = 0
    let reserved = 0
    let available = 0
    for (const [locationId, row] of v.rows) {
      onHand += row.onHand
      reserved += row.reserved
      if (this.locations.get(locationId)!.active) available += availableAt(row)
    }
    return { onHand, reserved, available, status: statusOf(available, v.threshold) }
  }

  private statusEvent(variantId: string, before: string) {
    const after = this.totals(variantId)
    if (before !== after.status) {
      this.events.push({
        eventType: "StockStatusChangedEvent",
        aggregateId: variantId,
        data: { variantId, oldStatus: before, newStatus: after.status, available: after.available }
      })
    }
  }

  /** One change of onHand / reserved at one location: its history entry and events. */
  private change(variantId: string, locationId: string, type: string, onHandChange: number, reservedChange: number, orderId: string | null) {
    const v = this.variants.get(variantId)!
    const before = this.totals(variantId).status
    const row = v.rows.get(locationId)!
    row.onHand += onHandChange
    row.reserved += reservedChange
    // A RECOUNT to the current count moves no row (its version stays), yet is a new variant version.
    if (onHandChange !== 0 || reservedChange !== 0) row.version += 1
    v.version += 1
    if (row.reserved < 0 || row.reserved > row.onHand) throw new Error(`model broke its invariant on ${variantId} at ${locationId}`)
    const t = this.totals(variantId)
    this.history.push({ variantId, locationId, type, onHandChange, reservedChange, onHandAfter: row.onHand, reservedAfter: row.reserved, orderId })
    this.events.push({
      eventType: "StockLevelChangedEvent",
      aggregateId: variantId,
      data: {
        variantId,
        onHand: t.onHand,
        reserved: t.reserved,
        available: t.available,
        version: v.version,
        changeType: type,
        onHandChange,
        reservedChange,
        locationId,
        location: { onHand: row.onHand, reserved: row.reserved, safetyStock: row.safetyStock, available: availableAt(row), version: row.version }
      }
    })
    this.statusEvent(variantId, before)
  }

  /** A `LocationStock` as answers state it (updatedAt left out). */
  locationStock(locationId: string, row: ModelRow) {
    return { locationId, onHand: row.onHand, reserved: row.reserved, safetyStock: row.safetyStock, available: availableAt(row), version: row.version }
  }

  /** A `StockLevel` as answers state it (sku and timestamps left out). */
  stockLevel(variantId: string) {
    const v = this.variants.get(variantId)!
    const t = this.totals(variantId)
    return {
      variantId,
      onHand: t.onHand,
      reserved: t.reserved,
      available: t.available,
      lowStockThreshold: v.threshold,
      status: t.status,
      version: v.version,
      // In allocation order: priority, then locationId.
      locations: [...v.rows.entries()]
        .sort(([a], [b]) => this.locations.get(a)!.priority - this.locations.get(b)!.priority || byCodeUnits(a, b))
        .map(([id, row]) => this.locationStock(id, row))
    }
  }

  encode(r: ModelReservation) {
    return {
      orderId: r.orderId,
      // Answers derive EXPIRED from expiresAt, whether or not the sweeper has expired the row yet.
      status: this.isDue(r) ? "EXPIRED" : r.status,
      lines: r.lines,
      expiresAt: iso(r.expiresAt),
      createdAt: iso(r.createdAt),
      updatedAt: iso(r.updatedAt)
    }
  }

  /** v1 `PUT /v1/stock-levels/{id}`: a new variant is stocked at `default`. */
  configure(variantId: string, threshold: number) {
    const v = this.variants.get(variantId)
    if (!v) {
      this.variants.set(variantId, { version: 1, threshold, rows: new Map([[DEFAULT_LOCATION, { onHand: 0, reserved: 0, safetyStock: 0, version: 1 }]]) })
      return
    }
    if (v.threshold === threshold) return
    const before = this.totals(variantId).status
    v.threshold = threshold
    v.version += 1
    this.statusEvent(variantId, before)
  }

  /** v1 adjustment (at `default`), as the service answers it. */
  adjust(variantId: string, type: "PURCHASE" | "SALE", quantity: number): Answer {
    const v = this.variants.get(variantId)
    if (!v) return { error: "VariantNotFound", fields: { variantId } }
    const row = v.rows.get(DEFAULT_LOCATION)!
    if (type === "SALE" && row.onHand - row.reserved < quantity) {
      return { error: "InsufficientStock", fields: { variantId, requested: quantity, available: row.onHand - row.reserved } }
    }
    this.change(variantId, DEFAULT_LOCATION, type, type === "PURCHASE" ? quantity : -quantity, 0, null)
    return { ok: null }
  }

  /** `PUT /v1/locations/{id}`: create, or change only the fields given. */
  putLocation(locationId: string, body: { readonly name: string; readonly priority?: number; readonly active?: boolean }): HttpAnswer {
    const current = this.locations.get(locationId)
    const next: ModelLocation = {
      name: body.name,
      priority: body.priority ?? current?.priority ?? 100,
      active: body.active ?? current?.active ?? true
    }
    const answer = (status: number): HttpAnswer => ({ status, body: { locationId, ...next } })
    if (current && current.name === next.name && current.priority === next.priority && current.active === next.active) return answer(200)
    // The variants stocked there whose status a change of `active` moves (no version bump: quantities stay).
    const affected = [...this.variants.entries()].filter(([, v]) => v.rows.has(locationId)).map(([id]) => id).sort(byCodeUnits)
    const before = new Map(affected.map((id) => [id, this.totals(id).status]))
    this.locations.set(locationId, next)
    this.events.push({ eventType: "LocationUpsertedEvent", aggregateId: locationId, data: { locationId, ...next } })
    if (current && current.active !== next.active) for (const id of affected) this.statusEvent(id, before.get(id)!)
    return answer(current ? 200 : 201)
  }

  /** `PUT /v1/stock-levels/{v}/locations/{l}`: stock the variant there (onHand 0), or set its safety stock. */
  stockAt(variantId: string, locationId: string, safetyStock: number | undefined): HttpAnswer {
    const v = this.variants.get(variantId)
    if (!v) return problem(404, "variant-not-found")
    const location = this.locations.get(locationId)
    if (!location) return problem(404, "location-not-found")
    const row = v.rows.get(locationId)
    if (!row) {
      const created = { onHand: 0, reserved: 0, safetyStock: safetyStock ?? 0, version: 1 }
      v.rows.set(locationId, created)
      return { status: 201, body: this.locationStock(locationId, created) }
    }
    if (safetyStock !== undefined && safetyStock !== row.safetyStock) {
      const before = this.totals(variantId).status
      const availableBefore = availableAt(row)
      row.safetyStock = safetyStock
      row.version += 1
      // The variant's version moves when its available does (the roll-up trigger).
      if (location.active && availableAt(row) !== availableBefore) v.version += 1
      this.statusEvent(variantId, before)
    }
    return { status: 200, body: this.locationStock(locationId, row) }
  }

  /** An adjustment at a location, as one item (single call or bulk) decides it: refused, or applied. */
  private adjustAtItem(item: BulkItem): { readonly status: number; readonly code?: string; readonly entry?: ModelHistory } {
    const locationId = item.locationId ?? DEFAULT_LOCATION
    const v = this.variants.get(item.variantId)
    if (!v) return { status: 404, code: "variant-not-found" }
    if (!this.locations.has(locationId)) return { status: 404, code: "location-not-found" }
    let row = v.rows.get(locationId)
    if (!row) {
      if (item.type === "SALE") return { status: 409, code: "insufficient-stock" }
      row = { onHand: 0, reserved: 0, safetyStock: 0, version: 1 }
      v.rows.set(locationId, row)
    }
    const onHandChange = item.type === "PURCHASE" ? item.quantity : item.type === "SALE" ? -item.quantity : item.quantity - row.onHand
    if (row.onHand + onHandChange < row.reserved) return { status: 409, code: "insufficient-stock" }
    this.change(item.variantId, locationId, item.type, onHandChange, 0, null)
    return { status: 200, entry: this.history[this.history.length - 1]! }
  }

  private entryAnswer(entry: ModelHistory) {
    return {
      variantId: entry.variantId,
      locationId: entry.locationId,
      type: entry.type,
      onHandChange: entry.onHandChange,
      reservedChange: entry.reservedChange,
      onHandAfter: entry.onHandAfter,
      reservedAfter: entry.reservedAfter
    }
  }

  /** `POST /v1/stock-levels/{v}/adjustments` with `locationId`. */
  adjustAt(item: BulkItem): HttpAnswer {
    const outcome = this.adjustAtItem(item)
    if (outcome.code !== undefined) return problem(outcome.status, outcome.code)
    return { status: 200, body: { stockLevel: this.stockLevel(item.variantId), entry: this.entryAnswer(outcome.entry!) } }
  }

  /** `POST /v1/stock-levels/{v}/transfers`. */
  transfer(variantId: string, from: string, to: string, quantity: number): HttpAnswer {
    if (from === to) return problem(400, "validation-failed")
    const v = this.variants.get(variantId)
    if (!v) return problem(404, "variant-not-found")
    if (!this.locations.has(from) || !this.locations.has(to)) return problem(404, "location-not-found")
    const source = v.rows.get(from)
    if (!source || availableAt(source) < quantity) return problem(409, "insufficient-stock")
    if (!v.rows.has(to)) v.rows.set(to, { onHand: 0, reserved: 0, safetyStock: 0, version: 1 })
    this.change(variantId, from, "TRANSFER_OUT", -quantity, 0, null)
    const out = this.history[this.history.length - 1]!
    this.change(variantId, to, "TRANSFER_IN", quantity, 0, null)
    const into = this.history[this.history.length - 1]!
    return { status: 200, body: { stockLevel: this.stockLevel(variantId), entries: [this.entryAnswer(out), this.entryAnswer(into)] } }
  }

  /** `POST /v1/adjustments`: items in request order; atomic: all or none. */
  bulk(items: ReadonlyArray<BulkItem>, atomic: boolean): HttpAnswer {
    const saved = { variants: structuredClone(this.variants), history: this.history.length, events: this.events.length }
    // Items apply in request order; each applied one answers the variant as it left it.
    const outcomes = items.map((item) => {
      const outcome = this.adjustAtItem(item)
      return { outcome, stockLevel: outcome.code === undefined ? this.stockLevel(item.variantId) : undefined }
    })
    const results = outcomes.map(({ outcome, stockLevel }, index) =>
      outcome.code === undefined ? { index, status: 200, stockLevel } : { index, status: outcome.status, problem: { code: outcome.code } }
    )
    if (!atomic) return { status: 200, body: { results } }
    const failures = outcomes.flatMap(({ outcome }, index) => (outcome.code === undefined ? [] : [{ index, code: outcome.code }]))
    if (failures.length === 0) return { status: 200, body: { results } }
    this.variants.clear()
    for (const [id, v] of saved.variants) this.variants.set(id, v)
    this.history.length = saved.history
    this.events.length = saved.events
    return { status: 409, body: { code: "batch-refused", failures } }
  }

  private isDue(r: ModelReservation) {
    return r.status === "ACTIVE" && r.expiresAt <= this.now
  }

  private settle(r: ModelReservation, how: "RELEASE" | "EXPIRE" | "COMMIT") {
    for (const l of r.lines) {
      for (const a of l.allocations) this.change(l.variantId, a.locationId, how, how === "COMMIT" ? -a.quantity : 0, -a.quantity, r.orderId)
    }
    r.status = how === "RELEASE" ? "RELEASED" : how === "EXPIRE" ? "EXPIRED" : "COMMITTED"
    r.updatedAt = this.now
    this.events.push(
      how === "COMMIT"
        ? { eventType: "InventoryReservationCommittedEvent", aggregateId: r.orderId, data: { orderId: r.orderId, lines: r.lines } }
        : {
            eventType: "InventoryReservationReleasedEvent",
            aggregateId: r.orderId,
            data: { orderId: r.orderId, lines: r.lines, reason: how === "RELEASE" ? "RELEASED" : "EXPIRED" }
          }
    )
  }

  /** Due ACTIVE reservations, oldest due first (ties by orderId). */
  private due(filter: (r: ModelReservation) => boolean = () => true) {
    return [...this.reservations.values()]
      .filter((r) => this.isDue(r) && filter(r))
      .sort((a, b) => a.expiresAt - b.expiresAt || (a.orderId < b.orderId ? -1 : 1))
  }

  /** The allocation rule (PRIORITY) on the model's rows; allocations summed per location, in location-id order. */
  private decide(lines: ReadonlyArray<ModelLine>) {
    const rows: Array<LocationStockRow> = []
    for (const [variantId, v] of this.variants) {
      for (const [locationId, row] of v.rows) {
        const location = this.locations.get(locationId)!
        rows.push({ variantId, locationId, onHand: row.onHand, reserved: row.reserved, safetyStock: row.safetyStock, active: location.active, priority: location.priority })
      }
    }
    const decision = allocateLines(lines, "PRIORITY", { rows, variants: new Set(this.variants.keys()), locations: this.locations })
    if (decision._tag === "Refused") return { failures: decision.failures.map((f) => ({ ...f })), lines: [] }
    const held = decision.lines.map((l) => ({
      variantId: l.variantId,
      quantity: l.quantity,
      allocations: [...l.allocations].sort((a, b) => byCodeUnits(a.locationId, b.locationId)).map((a) => ({ locationId: a.locationId, quantity: a.quantity }))
    }))
    return { failures: [], lines: held }
  }

  reserve(orderId: string, raw: ReadonlyArray<ModelLine>, ttlSeconds: number): Answer {
    const totals = new Map<string, number>()
    for (const l of raw) totals.set(l.variantId, (totals.get(l.variantId) ?? 0) + l.quantity)
    const lines = [...totals.keys()].sort().map((variantId) => ({ variantId, quantity: totals.get(variantId)! }))
    const existing = this.reservations.get(orderId)
    if (existing) {
      const same = JSON.stringify(existing.lines.map((l) => ({ variantId: l.variantId, quantity: l.quantity }))) === JSON.stringify(lines)
      return same ? { ok: { created: false, reservation: this.encode(existing) } } : { error: "ReservationConflict", fields: { orderId } }
    }
    let decision = this.decide(lines)
    const short = new Set(decision.failures.filter((f) => f.reason === "INSUFFICIENT_STOCK").map((f) => f.variantId))
    if (short.size > 0) {
      const due = this.due((r) => r.lines.some((l) => short.has(l.variantId)))
      for (const r of due) this.settle(r, "EXPIRE")
      if (due.length > 0) decision = this.decide(lines)
    }
    if (decision.failures.length > 0) {
      const failures = decision.failures
      this.events.push({ eventType: "InventoryReservationFailedEvent", aggregateId: orderId, data: { orderId, failures } })
      return { error: "ReservationRefused", fields: { orderId, failures } }
    }
    const r: ModelReservation = { orderId, status: "ACTIVE", lines: decision.lines, expiresAt: this.now + ttlSeconds * 1000, createdAt: this.now, updatedAt: this.now }
    this.reservations.set(orderId, r)
    this.events.push({ eventType: "InventoryReservedEvent", aggregateId: orderId, data: { orderId, lines: r.lines, expiresAt: iso(r.expiresAt) } })
    for (const l of r.lines) for (const a of l.allocations) this.change(l.variantId, a.locationId, "RESERVE", 0, a.quantity, orderId)
    return { ok: { created: true, reservation: this.encode(r) } }
  }

  release(orderId: string): Answer {
    const r = this.reservations.get(orderId)
    if (!r) return { error: "ReservationNotFound", fields: { orderId } }
    if (r.status === "COMMITTED") return { error: "ReservationNotActive", fields: { orderId, reservationStatus: r.status } }
    if (r.status === "ACTIVE") this.settle(r, this.isDue(r) ? "EXPIRE" : "RELEASE")
    return { ok: this.encode(r) }
  }

  commit(orderId: string): Answer {
    const r = this.reservations.get(orderId)
    if (!r) return { error: "ReservationNotFound", fields: { orderId } }
    if (this.isDue(r)) this.settle(r, "EXPIRE")
    if (r.status === "RELEASED" || r.status === "EXPIRED") return { error: "ReservationNotActive", fields: { orderId, reservationStatus: r.status } }
    if (r.status === "ACTIVE") this.settle(r, "COMMIT")
    return { ok: this.encode(r) }
  }

  get(orderId: string): Answer {
    const r = this.reservations.get(orderId)
    return r ? { ok: this.encode(r) } : { error: "ReservationNotFound", fields: { orderId } }
  }

  sweep(): number {
    const due = this.due()
    for (const r of due) this.settle(r, "EXPIRE")
    return due.length
  }
}

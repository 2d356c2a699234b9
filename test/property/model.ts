import type { Answer } from "./harness.js"

/**
 * A small in-memory statement of the reservation rules of API.md / EVENTS.md, written independently
 * of src/: what each operation answers, how stock moves, which history entries and events it writes.
 */
export interface ModelLine {
  readonly variantId: string
  readonly quantity: number
}
/** v1 calls act on the location `default` only: a variant's stock is all there (API.md "Locations"). */
export const DEFAULT_LOCATION = "default"
interface ModelVariant {
  onHand: number
  reserved: number
  version: number
  threshold: number
  /** The `default` location row's own version: +1 on every change of its onHand or reserved. */
  locationVersion: number
}
interface ModelReservation {
  readonly orderId: string
  status: "ACTIVE" | "COMMITTED" | "RELEASED" | "EXPIRED"
  readonly lines: ReadonlyArray<ModelLine>
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

const statusOf = (available: number, threshold: number) =>
  available <= 0 ? "OUT_OF_STOCK" : available <= threshold ? "LOW_STOCK" : "IN_STOCK"

const iso = (millis: number) => new Date(millis).toISOString()

/** Lines as answers and events state them: each line held whole at `default`. */
const withAllocations = (lines: ReadonlyArray<ModelLine>) =>
  lines.map((l) => ({ variantId: l.variantId, quantity: l.quantity, allocations: [{ locationId: DEFAULT_LOCATION, quantity: l.quantity }] }))

export class Model {
  readonly variants = new Map<string, ModelVariant>()
  readonly reservations = new Map<string, ModelReservation>()
  /** History entries and events written since the last check. */
  history: Array<ModelHistory> = []
  events: Array<ModelEvent> = []
  constructor(public now: number) {}

  private change(variantId: string, type: string, onHandChange: number, reservedChange: number, orderId: string | null) {
    const v = this.variants.get(variantId)!
    const before = statusOf(v.onHand - v.reserved, v.threshold)
    v.onHand += onHandChange
    v.reserved += reservedChange
    v.version += 1
    v.locationVersion += 1
    if (v.reserved < 0 || v.reserved > v.onHand) throw new Error(`model broke its invariant on ${variantId}`)
    const after = statusOf(v.onHand - v.reserved, v.threshold)
    this.history.push({ variantId, locationId: DEFAULT_LOCATION, type, onHandChange, reservedChange, onHandAfter: v.onHand, reservedAfter: v.reserved, orderId })
    this.events.push({
      eventType: "StockLevelChangedEvent",
      aggregateId: variantId,
      data: {
        variantId,
        onHand: v.onHand,
        reserved: v.reserved,
        available: v.onHand - v.reserved,
        version: v.version,
        changeType: type,
        onHandChange,
        reservedChange,
        locationId: DEFAULT_LOCATION,
        location: { onHand: v.onHand, reserved: v.reserved, safetyStock: 0, available: v.onHand - v.reserved, version: v.locationVersion }
      }
    })
    if (before !== after) {
      this.events.push({
        eventType: "StockStatusChangedEvent",
        aggregateId: variantId,
        data: { variantId, oldStatus: before, newStatus: after, available: v.onHand - v.reserved }
      })
    }
  }

  encode(r: ModelReservation) {
    return {
      orderId: r.orderId,
      // Answers derive EXPIRED from expiresAt, whether or not the sweeper has expired the row yet.
      status: this.isDue(r) ? "EXPIRED" : r.status,
      lines: withAllocations(r.lines),
      expiresAt: iso(r.expiresAt),
      createdAt: iso(r.createdAt),
      updatedAt: iso(r.updatedAt)
    }
  }

  configure(variantId: string, threshold: number) {
    const v = this.variants.get(variantId)
    if (!v) {
      this.variants.set(variantId, { onHand: 0, reserved: 0, version: 1, threshold, locationVersion: 1 })
      return
    }
    if (v.threshold === threshold) return
    const before = statusOf(v.onHand - v.reserved, v.threshold)
    v.threshold = threshold
    v.version += 1
    const after = statusOf(v.onHand - v.reserved, v.threshold)
    if (before !== after) {
      this.events.push({
        eventType: "StockStatusChangedEvent",
        aggregateId: variantId,
        data: { variantId, oldStatus: before, newStatus: after, available: v.onHand - v.reserved }
      })
    }
  }

  adjust(variantId: string, type: "PURCHASE" | "SALE", quantity: number): Answer {
    const v = this.variants.get(variantId)
    if (!v) return { error: "VariantNotFound", fields: { variantId } }
    if (type === "SALE" && v.onHand - v.reserved < quantity) {
      return { error: "InsufficientStock", fields: { variantId, requested: quantity, available: v.onHand - v.reserved } }
    }
    this.change(variantId, type, type === "PURCHASE" ? quantity : -quantity, 0, null)
    return { ok: null }
  }

  private isDue(r: ModelReservation) {
    return r.status === "ACTIVE" && r.expiresAt <= this.now
  }

  private settle(r: ModelReservation, how: "RELEASE" | "EXPIRE" | "COMMIT") {
    for (const l of r.lines) this.change(l.variantId, how, how === "COMMIT" ? -l.quantity : 0, -l.quantity, r.orderId)
    r.status = how === "RELEASE" ? "RELEASED" : how === "EXPIRE" ? "EXPIRED" : "COMMITTED"
    r.updatedAt = this.now
    const lines = withAllocations(r.lines)
    this.events.push(
      how === "COMMIT"
        ? { eventType: "InventoryReservationCommittedEvent", aggregateId: r.orderId, data: { orderId: r.orderId, lines } }
        : {
            eventType: "InventoryReservationReleasedEvent",
            aggregateId: r.orderId,
            data: { orderId: r.orderId, lines, reason: how === "RELEASE" ? "RELEASED" : "EXPIRED" }
          }
    )
  }

  /** Due ACTIVE reservations, oldest due first (ties by orderId). */
  private due(filter: (r: ModelReservation) => boolean = () => true) {
    return [...this.reservations.values()]
      .filter((r) => this.isDue(r) && filter(r))
      .sort((a, b) => a.expiresAt - b.expiresAt || (a.orderId < b.orderId ? -1 : 1))
  }

  private decide(lines: ReadonlyArray<ModelLine>) {
    return lines.flatMap((l) => {
      const v = this.variants.get(l.variantId)
      if (!v) return [{ variantId: l.variantId, requested: l.quantity, available: 0, reason: "UNKNOWN_VARIANT" }]
      const available = v.onHand - v.reserved
      return available >= l.quantity ? [] : [{ variantId: l.variantId, requested: l.quantity, available, reason: "INSUFFICIENT_STOCK" }]
    })
  }

  reserve(orderId: string, raw: ReadonlyArray<ModelLine>, ttlSeconds: number): Answer {
    const totals = new Map<string, number>()
    for (const l of raw) totals.set(l.variantId, (totals.get(l.variantId) ?? 0) + l.quantity)
    const lines = [...totals.keys()].sort().map((variantId) => ({ variantId, quantity: totals.get(variantId)! }))
    const existing = this.reservations.get(orderId)
    if (existing) {
      return JSON.stringify(existing.lines) === JSON.stringify(lines)
        ? { ok: { created: false, reservation: this.encode(existing) } }
        : { error: "ReservationConflict", fields: { orderId } }
    }
    let failures = this.decide(lines)
    const short = new Set(failures.filter((f) => f.reason === "INSUFFICIENT_STOCK").map((f) => f.variantId))
    if (short.size > 0) {
      const due = this.due((r) => r.lines.some((l) => short.has(l.variantId)))
      for (const r of due) this.settle(r, "EXPIRE")
      if (due.length > 0) failures = this.decide(lines)
    }
    if (failures.length > 0) {
      this.events.push({ eventType: "InventoryReservationFailedEvent", aggregateId: orderId, data: { orderId, failures } })
      return { error: "ReservationRefused", fields: { orderId, failures } }
    }
    const r: ModelReservation = { orderId, status: "ACTIVE", lines, expiresAt: this.now + ttlSeconds * 1000, createdAt: this.now, updatedAt: this.now }
    this.reservations.set(orderId, r)
    this.events.push({ eventType: "InventoryReservedEvent", aggregateId: orderId, data: { orderId, lines: withAllocations(lines), expiresAt: iso(r.expiresAt) } })
    for (const l of lines) this.change(l.variantId, "RESERVE", 0, l.quantity, orderId)
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

import type { HistoryType } from "./History.js"
import type { StockStatus } from "./StockLevel.js"

/** The events of EVENTS.md with their routing keys on the `inventory.events` exchange. */
export const routingKeys = {
  InventoryReservedEvent: "inventory.reserved",
  InventoryReservationFailedEvent: "inventory.reservation_failed",
  InventoryReservationReleasedEvent: "inventory.reservation_released",
  InventoryReservationCommittedEvent: "inventory.reservation_committed",
  StockLevelChangedEvent: "inventory.stock_level_changed",
  StockStatusChangedEvent: "inventory.stock_status_changed",
  LocationUpsertedEvent: "inventory.location_upserted"
} as const

export type EventType = keyof typeof routingKeys
export type AggregateType = "StockLevel" | "Reservation" | "Location"

/** An event as a state change produces it; the outbox writer adds id, time and correlation. */
export interface DomainEvent {
  readonly eventType: EventType
  readonly aggregateType: AggregateType
  readonly aggregateId: string
  readonly data: Readonly<Record<string, unknown>>
  /**
   * The correlation id of the request that started this story, when it is not the current one's:
   * a reservation expired by the sweeper keeps the id of the request that made it.
   */
  readonly correlationId?: string | null | undefined
}

/** The event, carrying `correlationId` instead of the current request's (when one is given). */
export const correlatedWith = (event: DomainEvent, correlationId: string | null | undefined): DomainEvent =>
  correlationId === undefined ? event : { ...event, correlationId }

/** The message body published to the broker (EVENTS.md). */
export interface EventEnvelope {
  readonly eventId: string
  readonly eventType: EventType
  readonly eventVersion: 1
  readonly occurredAt: string
  readonly aggregateType: AggregateType
  readonly aggregateId: string
  readonly correlationId: string | null
  readonly data: Readonly<Record<string, unknown>>
}

export interface ReservationLine {
  readonly variantId: string
  readonly quantity: number
  /** Where the line is held (Locations extension); published as given. */
  readonly allocations?: ReadonlyArray<{ readonly locationId: string; readonly quantity: number }>
}

/** A location row of a variant after a change, as StockLevelChangedEvent carries it. */
export interface LocationState {
  readonly onHand: number
  readonly reserved: number
  readonly safetyStock: number
  /** `max(0, onHand - reserved - safetyStock)` (API.md LocationStock). */
  readonly available: number
  readonly version: number
}

/** A change at one location: the variant's totals after it, and the location's values after it. */
export interface StockChange {
  readonly variantId: string
  readonly onHand: number
  readonly reserved: number
  /** The variant's stored `available` (the sum over its active locations). */
  readonly available: number
  readonly version: number
  readonly changeType: HistoryType
  readonly onHandChange: number
  readonly reservedChange: number
  readonly locationId: string
  readonly location: LocationState
}

export const stockLevelChanged = (change: StockChange): DomainEvent => ({
  eventType: "StockLevelChangedEvent",
  aggregateType: "StockLevel",
  aggregateId: change.variantId,
  data: {
    variantId: change.variantId,
    onHand: change.onHand,
    reserved: change.reserved,
    available: change.available,
    version: change.version,
    changeType: change.changeType,
    onHandChange: change.onHandChange,
    reservedChange: change.reservedChange,
    locationId: change.locationId,
    location: {
      onHand: change.location.onHand,
      reserved: change.location.reserved,
      safetyStock: change.location.safetyStock,
      available: change.location.available,
      version: change.location.version
    }
  }
})

export const stockStatusChanged = (
  variantId: string,
  oldStatus: StockStatus,
  newStatus: StockStatus,
  available: number
): DomainEvent => ({
  eventType: "StockStatusChangedEvent",
  aggregateType: "StockLevel",
  aggregateId: variantId,
  data: { variantId, oldStatus, newStatus, available }
})

export const inventoryReserved = (
  orderId: string,
  lines: ReadonlyArray<ReservationLine>,
  expiresAt: Date
): DomainEvent => ({
  eventType: "InventoryReservedEvent",
  aggregateType: "Reservation",
  aggregateId: orderId,
  data: { orderId, lines, expiresAt: expiresAt.toISOString() }
})

export const inventoryReservationFailed = (
  orderId: string,
  failures: ReadonlyArray<{ variantId: string; requested: number; available: number; reason: string }>
): DomainEvent => ({
  eventType: "InventoryReservationFailedEvent",
  aggregateType: "Reservation",
  aggregateId: orderId,
  data: { orderId, failures }
})

export const inventoryReservationReleased = (
  orderId: string,
  lines: ReadonlyArray<ReservationLine>,
  reason: "RELEASED" | "EXPIRED"
): DomainEvent => ({
  eventType: "InventoryReservationReleasedEvent",
  aggregateType: "Reservation",
  aggregateId: orderId,
  data: { orderId, lines, reason }
})

export const inventoryReservationCommitted = (
  orderId: string,
  lines: ReadonlyArray<ReservationLine>
): DomainEvent => ({
  eventType: "InventoryReservationCommittedEvent",
  aggregateType: "Reservation",
  aggregateId: orderId,
  data: { orderId, lines }
})

/** A location created or changed (EVENTS.md). */
export const locationUpserted = (location: {
  readonly locationId: string
  readonly name: string
  readonly priority: number
  readonly active: boolean
}): DomainEvent => ({
  eventType: "LocationUpsertedEvent",
  aggregateType: "Location",
  aggregateId: location.locationId,
  data: { locationId: location.locationId, name: location.name, priority: location.priority, active: location.active }
})

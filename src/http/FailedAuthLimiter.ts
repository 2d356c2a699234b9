/**
 * Failed authentications per client address: a token bucket per address that each 401 drains, so a
 * flood of bad tokens costs one signature check per allowed failure, not one per request. Bounded
 * memory: at most MAX_ADDRESSES buckets, the least recently touched forgotten first (a forgotten
 * address starts again with a full bucket, which only ever errs towards letting a client in).
 */
const MAX_ADDRESSES = 10_000

interface Bucket {
  tokens: number
  at: number
}

export interface FailedAuthLimiter {
  /** Seconds until `address` may try an unverified token again, or 0 when it may now. */
  readonly retryAfterSeconds: (address: string, now?: number) => number
  /** Counts one failed authentication of `address`. */
  readonly failed: (address: string, now?: number) => void
  readonly size: () => number
}

/** `perMinute` failures per address (burst as large), refilled evenly over the minute. */
export const makeFailedAuthLimiter = (perMinute: number, maxAddresses = MAX_ADDRESSES): FailedAuthLimiter => {
  const ratePerMs = perMinute / 60_000
  // A Map iterates in insertion order: re-inserting on each touch keeps the least recent first.
  const buckets = new Map<string, Bucket>()
  const current = (address: string, now: number): Bucket => {
    const bucket = buckets.get(address)
    if (bucket === undefined) return { tokens: perMinute, at: now }
    return { tokens: Math.min(perMinute, bucket.tokens + (now - bucket.at) * ratePerMs), at: now }
  }
  return {
    retryAfterSeconds: (address, now = Date.now()) => {
      if (!buckets.has(address)) return 0
      const { tokens } = current(address, now)
      return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000))
    },
    failed: (address, now = Date.now()) => {
      const bucket = current(address, now)
      bucket.tokens = Math.max(0, bucket.tokens - 1)
      buckets.delete(address)
      if (buckets.size >= maxAddresses) buckets.delete(buckets.keys().next().value!)
      buckets.set(address, bucket)
    },
    size: () => buckets.size
  }
}

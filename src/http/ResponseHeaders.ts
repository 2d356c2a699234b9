import { HttpServerResponse } from "effect/http"

/**
 * Sets each of `headers` (lowercase names) on a response with one `setHeader` apiece.
 * `HttpServerResponse.setHeaders` merges through object spreads of the header maps, which cost
 * about 8 µs per response here against about 1.4 µs for eight single sets (a microbenchmark of
 * both, same headers in the same order: docs/performance.md, 2026-12-07).
 */
export const setEachHeader = (response: HttpServerResponse.HttpServerResponse, headers: Readonly<Record<string, string>>) => {
  let out = response
  for (const name in headers) out = HttpServerResponse.setHeader(out, name, headers[name]!)
  return out
}

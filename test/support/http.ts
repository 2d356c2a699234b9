/** A tiny JSON client for tests: status, headers and parsed body of one request. */
export interface JsonResponse<B = any> {
  readonly status: number
  readonly headers: Headers
  readonly body: B
}

export const request = async <B = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly rawBody?: string; readonly headers?: Record<string, string> } = {}
): Promise<JsonResponse<B>> => {
  const headers: Record<string, string> = { ...options.headers }
  let body: string | undefined
  if (options.rawBody !== undefined) body = options.rawBody
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers["content-type"] ??= "application/json"
  }
  const response = await fetch(baseUrl + path, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text === "" ? null : JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed as B }
}

export const client = (baseUrl: string, defaultHeaders: Record<string, string> = {}) => ({
  get: <B = any>(path: string, headers: Record<string, string> = {}) => request<B>(baseUrl, "GET", path, { headers: { ...defaultHeaders, ...headers } }),
  put: <B = any>(path: string, body: unknown, headers: Record<string, string> = {}) =>
    request<B>(baseUrl, "PUT", path, { body, headers: { ...defaultHeaders, ...headers } }),
  post: <B = any>(path: string, body?: unknown, headers: Record<string, string> = {}) =>
    request<B>(baseUrl, "POST", path, { body, headers: { ...defaultHeaders, ...headers } }),
  raw: <B = any>(method: string, path: string, rawBody: string, headers: Record<string, string> = {}) =>
    request<B>(baseUrl, method, path, { rawBody, headers: { ...defaultHeaders, ...headers } })
})

import { HttpApi, type HttpApiGroup } from "effect/http-api"

/**
 * What the router serves, by path template, so that a request it cannot route gets the right
 * answer: 405 with `Allow` for a known path (API.md Conventions), 404 for an unknown one.
 */
export interface Route {
  readonly method: string
  readonly path: string
}

/** Every endpoint of an HttpApi, read from the contract itself (a new endpoint needs nothing here). */
export const routesOf = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
): ReadonlyArray<Route> => {
  const routes: Array<Route> = []
  HttpApi.reflect(api, {
    onGroup: () => undefined,
    onEndpoint: ({ endpoint }) => {
      routes.push({ method: endpoint.method, path: endpoint.path })
    }
  })
  return routes
}

const segments = (path: string) => path.split("/").filter((s) => s !== "")

/** A template segment `:name` matches any one segment, as the router's parameters do. */
const matches = (template: ReadonlyArray<string>, path: ReadonlyArray<string>) =>
  template.length === path.length && template.every((t, i) => t.startsWith(":") || t === path[i])

/**
 * The methods a path is served with, sorted, empty for an unknown path. HEAD is served wherever GET
 * is (the platform router answers it with the GET route).
 */
export const allowedMethods = (routes: ReadonlyArray<Route>) => {
  const compiled = routes.map((route) => ({ method: route.method.toUpperCase(), template: segments(route.path) }))
  return (path: string): ReadonlyArray<string> => {
    const parts = segments(path)
    const methods = new Set(compiled.filter((route) => matches(route.template, parts)).map((route) => route.method))
    if (methods.has("GET")) methods.add("HEAD")
    return [...methods].sort()
  }
}

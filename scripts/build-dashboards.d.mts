// Types for scripts/build-dashboards.mjs, so the TypeScript tests can import it.
export declare function buildDashboards(): Record<string, unknown>

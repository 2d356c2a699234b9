// Types for scripts/validate-k8s.mjs, so the TypeScript tests can import it.
export type K8sObject = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML
  spec?: any
  data?: Record<string, string>
  [k: string]: unknown
}
export declare const defaultKustomizations: ReadonlyArray<string>
export declare function render(dir: string): Array<K8sObject>
export declare function validate(objects: ReadonlyArray<unknown>): Promise<Array<string>>
export declare function renderAndValidate(
  dirs?: ReadonlyArray<string>
): Promise<Array<{ dir: string; objects: Array<K8sObject>; problems: Array<string> }>>

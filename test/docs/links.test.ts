// Every relative link in docs/ and README.md must reach a file of the repository (and, with a
// #fragment, a heading of it, by GitHub's slug rules), and every runbook an alert rule names must
// exist. Pure file reading: no service, no database.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

const root = path.resolve(import.meta.dirname, "../..")

interface Link {
  readonly line: number
  readonly target: string
}

/** Replaces fenced code blocks and inline code spans with blanks (keeping line numbers): links in code are not links. */
const withoutCode = (markdown: string): string => {
  let fence: string | undefined
  return markdown
    .split("\n")
    .map((line) => {
      const opening = /^\s{0,3}(`{3,}|~{3,})/.exec(line)
      if (fence !== undefined) {
        if (opening && opening[1]![0] === fence[0] && opening[1]!.length >= fence.length) fence = undefined
        return ""
      }
      if (opening) {
        fence = opening[1]!
        return ""
      }
      return line.replace(/(`+)[\s\S]*?\1/g, (span) => " ".repeat(span.length))
    })
    .join("\n")
}

/** Inline links and images `[text](target "title")`, `[text](<target>)`, and reference definitions `[x]: target`. */
export const linksOf = (markdown: string): ReadonlyArray<Link> => {
  const links: Array<Link> = []
  withoutCode(markdown)
    .split("\n")
    .forEach((text, index) => {
      for (const match of text.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
        links.push({ line: index + 1, target: match[1]!.replace(/^<|>$/g, "") })
      }
      const definition = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(text)
      if (definition) links.push({ line: index + 1, target: definition[1]!.replace(/^<|>$/g, "") })
    })
  return links
}

/**
 * GitHub's heading anchor (github-slugger): the rendered text lower-cased, every character that is not
 * a letter, digit, `_`, `-` or space removed, spaces turned into hyphens.
 */
export const githubSlug = (heading: string): string =>
  heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
    .replace(/<[^>]+>/g, "") // inline HTML tags
    .replace(/[`*]/g, "") // code and emphasis markers
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-")

/** Every anchor a Markdown file offers: heading slugs (repeats get -1, -2, … as on GitHub) and HTML ids/names. */
export const anchorsOf = (markdown: string): ReadonlySet<string> => {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const line of withoutCode(markdown).split("\n")) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)
    if (heading) {
      const slug = githubSlug(heading[1]!)
      const count = seen.get(slug) ?? 0
      seen.set(slug, count + 1)
      anchors.add(count === 0 ? slug : `${slug}-${count}`)
    }
    for (const html of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(html[1]!)
  }
  return anchors
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")

const anchorsCache = new Map<string, ReadonlySet<string>>()
const anchorsOfFile = (file: string) => {
  let anchors = anchorsCache.get(file)
  if (!anchors) {
    anchors = anchorsOf(readFileSync(file, "utf8"))
    anchorsCache.set(file, anchors)
  }
  return anchors
}

/** Why `target`, linked from `fromFile` (a path in the repository), does not resolve; undefined when it does. */
export const problemOf = (fromFile: string, target: string, ownMarkdown?: string): string | undefined => {
  if (isExternal(target)) return undefined
  const hashAt = target.indexOf("#")
  const pathPart = (hashAt === -1 ? target : target.slice(0, hashAt)).replace(/\?.*$/, "")
  const fragment = hashAt === -1 ? undefined : decodeURIComponent(target.slice(hashAt + 1))
  const resolved = pathPart === "" ? fromFile : path.resolve(path.dirname(fromFile), decodeURIComponent(pathPart))
  if (path.relative(root, resolved).startsWith("..")) return `${target}: points outside the repository`
  if (pathPart !== "" && !existsSync(resolved)) return `${target}: no such file`
  if (fragment === undefined || fragment === "") return undefined
  if (pathPart !== "" && (statSync(resolved).isDirectory() || !resolved.endsWith(".md"))) return undefined
  const anchors = pathPart === "" && ownMarkdown !== undefined ? anchorsOf(ownMarkdown) : anchorsOfFile(resolved)
  return anchors.has(fragment) ? undefined : `${target}: no heading #${fragment} in ${path.relative(root, resolved)}`
}

/** Every broken relative link of one Markdown text that lives at `file`, as `file:line: problem`. */
export const brokenLinks = (file: string, markdown: string): ReadonlyArray<string> =>
  linksOf(markdown).flatMap((link) => {
    const problem = problemOf(file, link.target, markdown)
    return problem === undefined ? [] : [`${path.relative(root, file)}:${link.line}: ${problem}`]
  })

const markdownFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? markdownFiles(full) : entry.name.endsWith(".md") ? [full] : []
  })

const documents = [path.join(root, "README.md"), ...markdownFiles(path.join(root, "docs"))]

interface AlertRule {
  readonly alert?: string
  readonly annotations?: { readonly runbook_url?: string }
}

const ruleFiles = readdirSync(path.join(root, "deploy/observability/prometheus"))
  .filter((name) => /\.ya?ml$/.test(name))
  .map((name) => path.join(root, "deploy/observability/prometheus", name))

const alertRules = ruleFiles.flatMap((file) =>
  (parse(readFileSync(file, "utf8")) as { groups: ReadonlyArray<{ rules: ReadonlyArray<AlertRule> }> }).groups
    .flatMap((group) => group.rules)
    .filter((rule) => rule.alert !== undefined)
)

describe("documentation links", () => {
  it("finds the Markdown files to check", () => {
    expect(documents.map((file) => path.relative(root, file))).toEqual(expect.arrayContaining(["README.md", "docs/runbooks/alerts.md"]))
  })

  it("resolves every relative link of docs/ and README.md to an existing file and heading", () => {
    const broken = documents.flatMap((file) => brokenLinks(file, readFileSync(file, "utf8")))
    expect(broken).toEqual([])
  })

  it("finds the runbook section every alert rule names", () => {
    expect(alertRules.length).toBeGreaterThan(0)
    const broken = alertRules.flatMap((rule) => {
      const url = rule.annotations?.runbook_url
      if (url === undefined) return [`${rule.alert}: no runbook_url`]
      // runbook_url is a path from the repository root (Alertmanager templates prefix the repository URL).
      const problem = problemOf(path.join(root, "ALERT_RULES"), url)
      return problem === undefined ? [] : [`${rule.alert}: ${problem}`]
    })
    expect(broken).toEqual([])
  })

  it("names the runbooks of the operational procedures in the alert runbook", () => {
    const alerts = readFileSync(path.join(root, "docs/runbooks/alerts.md"), "utf8")
    const linked = new Set(linksOf(alerts).map((link) => link.target.replace(/#.*$/, "")))
    for (const runbook of ["outbox-backlog.md", "parked-events.md", "dead-letter-queue.md", "broker-outage.md", "database-failover.md"]) {
      expect(linked.has(runbook), runbook).toBe(true)
    }
  })
})

describe("the link checker itself", () => {
  const file = path.join(root, "docs/in-memory-example.md")

  it("reports a link to a missing file and to a missing heading, with their lines", () => {
    const markdown = [
      "# Example",
      "",
      "See [the alerts](runbooks/alerts.md#inventoryservicedown) and [security](security.md).",
      "A [broken file](runbooks/no-such-runbook.md) and a [broken anchor](runbooks/alerts.md#no-such-alert).",
      "Also [here](#example), [nowhere](#nowhere) and [outside](../../elsewhere.md).",
      "[ref]: ./adr/no-such-adr.md"
    ].join("\n")
    expect(brokenLinks(file, markdown)).toEqual([
      "docs/in-memory-example.md:4: runbooks/no-such-runbook.md: no such file",
      "docs/in-memory-example.md:4: runbooks/alerts.md#no-such-alert: no heading #no-such-alert in docs/runbooks/alerts.md",
      "docs/in-memory-example.md:5: #nowhere: no heading #nowhere in docs/in-memory-example.md",
      "docs/in-memory-example.md:5: ../../elsewhere.md: points outside the repository",
      "docs/in-memory-example.md:6: ./adr/no-such-adr.md: no such file"
    ])
  })

  it("ignores external links and anything inside code", () => {
    const markdown = [
      "[site](https://example.com/x.md) [mail](mailto:ops@example.com)",
      "`[not a link](missing.md)`",
      "```",
      "[not a link either](missing.md)",
      "```"
    ].join("\n")
    expect(brokenLinks(file, markdown)).toEqual([])
  })

  it("slugs headings as GitHub does", () => {
    expect(githubSlug("InventoryServiceDown")).toBe("inventoryservicedown")
    expect(githubSlug("6. Configuration Management (Ref: ADR-016)")).toBe("6-configuration-management-ref-adr-016")
    expect(githubSlug("Primary: point-in-time restore (RDS)")).toBe("primary-point-in-time-restore-rds")
    expect(githubSlug("`npm run reconcile` reports drift")).toBe("npm-run-reconcile-reports-drift")
    expect(githubSlug("Retry & back-off: [the relay](x.md)")).toBe("retry--back-off-the-relay")
    expect([...anchorsOf("## Notes\n## Notes\n## Notes")]).toEqual(["notes", "notes-1", "notes-2"])
  })
})

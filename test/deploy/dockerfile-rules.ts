// A small Dockerfile rule checker (no Docker engine needed): parses instructions and stages and
// reports every violation of the image rules as one line. Used by dockerfile.test.ts.

export interface Instruction {
  readonly keyword: string // upper-case: FROM, RUN, COPY, ...
  readonly args: string
  readonly line: number // 1-based line where the instruction starts
}

export interface Stage {
  readonly index: number
  readonly from: Instruction
  readonly image: string
  readonly name: string | undefined
  readonly instructions: ReadonlyArray<Instruction>
}

/** Instructions with line continuations joined and comments dropped. Heredocs are not supported. */
export const parseInstructions = (text: string): Array<Instruction> => {
  const out: Array<Instruction> = []
  const lines = text.split(/\r?\n/)
  let buffer = ""
  let start = 0
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const trimmed = raw.trim()
    if (buffer === "" && (trimmed === "" || trimmed.startsWith("#"))) continue
    if (buffer !== "" && trimmed.startsWith("#")) continue // comment inside a continued instruction
    if (buffer === "") start = i + 1
    if (trimmed.endsWith("\\")) {
      buffer += trimmed.slice(0, -1) + " "
      continue
    }
    buffer += trimmed
    const match = /^(\S+)\s*(.*)$/s.exec(buffer)!
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start })
    buffer = ""
  }
  if (buffer !== "") throw new Error(`line ${start}: instruction ends with a line continuation`)
  return out
}

/** Splits instructions into build stages (instructions before the first FROM, i.e. ARG, are dropped). */
export const parseStages = (text: string): Array<Stage> => {
  const stages: Array<{ index: number; from: Instruction; image: string; name: string | undefined; instructions: Array<Instruction> }> = []
  for (const instruction of parseInstructions(text)) {
    if (instruction.keyword === "FROM") {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith("--"))
      const asAt = words.findIndex((w) => w.toUpperCase() === "AS")
      stages.push({
        index: stages.length,
        from: instruction,
        image: words[0] ?? "",
        name: asAt >= 0 ? words[asAt + 1] : undefined,
        instructions: []
      })
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(instruction)
    }
  }
  return stages
}

/** Official Docker Hub `node` image, exact major.minor.patch, a slim variant, optionally with a digest. */
const OFFICIAL_SLIM_NODE = /^(?:docker\.io\/)?(?:library\/)?node:(\d+\.\d+\.\d+)-(?:(?:bookworm|bullseye|trixie)-)?slim(?:@sha256:[0-9a-f]{64})?$/

const BUILD_TOOLS = /(^|\s)(gcc|g\+\+|make|cmake|clang|build-essential|python3?(\.\d+)?|python-is-python3|node-gyp)(=\S*)?(?=\s|$)/

/** ENV values of an instruction, both `ENV K=V K2="V 2"` and the legacy `ENV K V` form. */
const envPairs = (args: string): Map<string, string> => {
  const pairs = new Map<string, string>()
  const unquote = (s: string) => s.replace(/^"(.*)"$/s, "$1").replace(/^'(.*)'$/s, "$1")
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const m = /^(\S+)\s+(.*)$/s.exec(args)
    if (m) pairs.set(m[1]!, unquote(m[2]!.trim()))
    return pairs
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) pairs.set(m[1]!, unquote(m[2]!))
  return pairs
}

/** The sources of a COPY/ADD (flags and destination removed); exec (JSON) form supported. */
const copySources = (args: string): { flags: Array<string>; sources: Array<string> } => {
  let words: Array<string>
  const trimmed = args.trim()
  const flags: Array<string> = []
  let rest = trimmed
  while (rest.startsWith("--")) {
    const m = /^(\S+)\s*(.*)$/s.exec(rest)!
    flags.push(m[1]!)
    rest = m[2]!
  }
  if (rest.startsWith("[")) words = JSON.parse(rest) as Array<string>
  else words = rest.split(/\s+/).filter(Boolean)
  return { flags, sources: words.slice(0, -1) }
}

/** Every violation of the image rules, one line each; empty when the Dockerfile is acceptable. */
export const checkDockerfile = (text: string): Array<string> => {
  const problems: Array<string> = []
  let stages: Array<Stage>
  try {
    stages = parseStages(text)
  } catch (e) {
    return [`does not parse: ${(e as Error).message}`]
  }
  if (stages.length === 0) return ["no FROM instruction"]
  if (stages.length < 2) problems.push("not multi-stage: build in one stage, run in another")

  const names = new Set<string>()
  const versions = new Set<string>()
  for (const stage of stages) {
    const where = `line ${stage.from.line}`
    const isFinal = stage.index === stages.length - 1
    if (names.has(stage.image.toLowerCase())) {
      if (isFinal) problems.push(`${where}: final stage is built FROM the earlier stage "${stage.image}"; start it from the pinned base image`)
    } else if (stage.image.includes("$")) {
      problems.push(`${where}: FROM ${stage.image} uses a variable; pin the image literally`)
    } else {
      const m = OFFICIAL_SLIM_NODE.exec(stage.image)
      if (!m) problems.push(`${where}: FROM ${stage.image} is not an official node image pinned to an exact x.y.z slim tag`)
      else versions.add(m[1]!)
    }
    if (stage.name) names.add(stage.name.toLowerCase())
  }
  if (versions.size > 1) problems.push(`stages use different Node versions (${[...versions].join(", ")}); use one pinned base`)

  const final = stages[stages.length - 1]!
  const inFinal = (i: Instruction) => `final stage, line ${i.line}`

  const nodeEnv = final.instructions
    .filter((i) => i.keyword === "ENV")
    .map((i) => envPairs(i.args).get("NODE_ENV"))
    .filter((v) => v !== undefined)
    .at(-1)
  if (nodeEnv !== "production") problems.push(`final stage does not set ENV NODE_ENV=production${nodeEnv ? ` (it sets ${nodeEnv})` : ""}`)

  const user = final.instructions.filter((i) => i.keyword === "USER").at(-1)
  if (!user) problems.push("final stage has no USER: the image would run as root")
  else if (/^(root|0)(:.*)?$/.test(user.args.trim())) problems.push(`${inFinal(user)}: USER ${user.args} is root`)

  // node_modules copied into the final stage must come from a stage that installed them without
  // devDependencies (every npm ci/install there has --omit=dev).
  const byName = new Map(stages.filter((s) => s.name).map((s) => [s.name!.toLowerCase(), s]))
  for (const i of final.instructions) {
    if (i.keyword !== "COPY") continue
    const { flags, sources } = copySources(i.args)
    const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length).toLowerCase()
    if (from === undefined || !sources.some((s) => /node_modules/.test(s))) continue
    const stage = byName.get(from) ?? stages[Number(from)]
    const installs = (stage?.instructions ?? [])
      .filter((x) => x.keyword === "RUN")
      .flatMap((x) => x.args.split(/&&|\|\||;/))
      .filter((command) => /(^|\s)npm\s+(ci|install|i|add)(\s|$)/.test(command))
    if (installs.length === 0 || installs.some((command) => !/--omit[= ]dev(\s|$)/.test(command))) {
      problems.push(`${inFinal(i)}: copies node_modules from stage "${from}", which installs devDependencies; install it there with npm ci --omit=dev`)
    }
  }

  for (const i of final.instructions) {
    if (i.keyword === "RUN") {
      for (const command of i.args.split(/&&|\|\||;/)) {
        if (/(^|\s)npm\s+(ci|install|i|add)(\s|$)/.test(command) && !/--omit[= ]dev(\s|$)/.test(command)) {
          problems.push(`${inFinal(i)}: "${command.trim()}" installs devDependencies; add --omit=dev (or copy pruned node_modules)`)
        }
        if (/(^|\s)(apt-get|apt|apk|yum|dnf)\s+(\S+\s+)*(install|add)(\s|$)/.test(command) && BUILD_TOOLS.test(command)) {
          problems.push(`${inFinal(i)}: installs build tools ("${command.trim()}"); build in an earlier stage`)
        }
      }
    }
    if (i.keyword === "COPY" || i.keyword === "ADD") {
      const { flags, sources } = copySources(i.args)
      const fromStage = flags.some((f) => f.startsWith("--from="))
      if (!fromStage && sources.some((s) => /^\.\/?$/.test(s) || s === "*" || s === "./*")) {
        problems.push(`${inFinal(i)}: ${i.keyword} ${i.args} copies the whole build context; copy only dist/, migrations/ and package.json`)
      }
    }
  }
  return problems
}

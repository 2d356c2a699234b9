// The image rules, checked on the Dockerfile's text (no Docker engine on these machines), and the
// checker itself proven on Dockerfiles that break each rule.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { checkDockerfile, parseStages } from "./dockerfile-rules.js"

const root = new URL("../../", import.meta.url)
const dockerfile = readFileSync(new URL("Dockerfile", root), "utf8")

const GOOD = `
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \\
 && npm ci && npm run build

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
USER node
CMD ["node", "dist/src/main.js"]
`

/** GOOD with one change, to prove each rule fires on its own. */
const broken = (from: string, to: string) => {
  expect(GOOD).toContain(from)
  return GOOD.replace(from, to)
}

describe("the Dockerfile", () => {
  it("passes every image rule", () => {
    expect(checkDockerfile(dockerfile)).toEqual([])
  })

  it("ships dist/, migrations/ and package.json in the final stage and starts node directly as PID 1", () => {
    const stages = parseStages(dockerfile)
    const final = stages.at(-1)!
    const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args)
    expect(copies).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^--from=\S+ \/app\/dist \.\/dist$/),
        expect.stringMatching(/^--from=\S+ \/app\/node_modules \.\/node_modules$/),
        "package.json ./",
        "migrations ./migrations"
      ])
    )
    expect(final.instructions.filter((i) => i.keyword === "USER").at(-1)?.args).toBe("node")
    expect(final.instructions.filter((i) => i.keyword === "EXPOSE").map((i) => i.args)).toContain("8080")
    expect(final.instructions.filter((i) => i.keyword === "CMD").at(-1)?.args).toBe('["node", "dist/src/main.js"]')
  })

  it("labels the image with the OCI annotations a registry and a scanner read (version and revision from CI)", () => {
    const final = parseStages(dockerfile).at(-1)!
    const labels = final.instructions.filter((i) => i.keyword === "LABEL").map((i) => i.args).join(" ")
    for (const key of ["title", "description", "version", "revision", "created", "source", "licenses", "base.name"]) {
      expect(labels, key).toMatch(new RegExp(`org\\.opencontainers\\.image\\.${key.replace(".", "\\.")}="[^"]+"`))
    }
    expect(labels).toContain('org.opencontainers.image.version="${VERSION}"')
    expect(labels).toContain('org.opencontainers.image.revision="${REVISION}"')
    // The base named in the label is the image the stage is built FROM.
    expect(labels).toContain(`org.opencontainers.image.base.name="docker.io/library/${final.image}"`)
  })

  it("keeps the build context to an allow-list (.dockerignore starts by excluding everything)", () => {
    const ignore = readFileSync(new URL(".dockerignore", root), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"))
    expect(ignore[0]).toBe("*")
    const allowed = ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1))
    expect(allowed).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "src", "migrations"]))
    for (const secretish of [".env", ".git", "node_modules", "backups", ".data"]) expect(allowed).not.toContain(secretish)
  })
})

describe("the rule checker", () => {
  it("accepts a conventional good multi-stage Dockerfile (build tools and COPY . . are fine in the build stage)", () => {
    expect(checkDockerfile(GOOD)).toEqual([])
  })

  it.each([
    [
      "a single stage",
      `FROM node:20.20.2-bookworm-slim\nENV NODE_ENV=production\nCOPY package.json ./\nRUN npm ci --omit=dev\nUSER node\n`,
      /not multi-stage/
    ],
    ["a floating major tag", broken("FROM node:20.20.2-bookworm-slim AS build", "FROM node:20-slim AS build"), /node:20-slim is not an official node image pinned/],
    ["latest", broken("FROM node:20.20.2-bookworm-slim\n", "FROM node:latest\n"), /node:latest is not/],
    ["a non-slim image", broken("FROM node:20.20.2-bookworm-slim\n", "FROM node:20.20.2-bookworm\n"), /node:20\.20\.2-bookworm is not/],
    ["an unofficial image", broken("FROM node:20.20.2-bookworm-slim\n", "FROM someone/node:20.20.2-bookworm-slim\n"), /someone\/node:.* is not/],
    ["alpine", broken("FROM node:20.20.2-bookworm-slim\n", "FROM node:20.20.2-alpine\n"), /is not an official node image/],
    ["an image from a variable", broken("FROM node:20.20.2-bookworm-slim\n", "FROM node:${NODE_VERSION}-slim\n"), /uses a variable/],
    ["two Node versions", broken("FROM node:20.20.2-bookworm-slim\n", "FROM node:22.11.0-bookworm-slim\n"), /different Node versions/],
    ["a final stage built on the build stage", broken("FROM node:20.20.2-bookworm-slim\n", "FROM build\n"), /final stage is built FROM the earlier stage "build"/],
    ["no NODE_ENV", broken("ENV NODE_ENV=production\n", ""), /does not set ENV NODE_ENV=production/],
    ["NODE_ENV=development", broken("ENV NODE_ENV=production\n", "ENV NODE_ENV=development\n"), /sets development/],
    ["no USER", broken("USER node\n", ""), /no USER/],
    ["USER root", broken("USER node\n", "USER root\n"), /USER root is root/],
    ["USER 0:0", broken("USER node\n", "USER 0:0\n"), /is root/],
    ["npm ci with devDependencies", broken("RUN npm ci --omit=dev\n", "RUN npm ci\n"), /"npm ci" installs devDependencies/],
    ["npm install with devDependencies", broken("RUN npm ci --omit=dev\n", "RUN npm install --no-audit\n"), /installs devDependencies/],
    ["COPY . .", broken("COPY migrations ./migrations\n", "COPY . .\n"), /copies the whole build context/],
    ["ADD ./ /app", broken("COPY migrations ./migrations\n", "ADD ./ /app\n"), /copies the whole build context/],
    [
      "node_modules copied from the build stage (with devDependencies)",
      broken("COPY --from=build /app/dist ./dist\n", "COPY --from=build /app/dist ./dist\nCOPY --from=build /app/node_modules ./node_modules\n"),
      /copies node_modules from stage "build", which installs devDependencies/
    ],
    [
      "build tools in the final stage",
      broken("RUN npm ci --omit=dev\n", "RUN apt-get update && apt-get install -y \\\n    gcc make python3 \\\n && npm ci --omit=dev\n"),
      /installs build tools/
    ]
  ])("rejects %s", (_, text, message) => {
    const problems = checkDockerfile(text)
    expect(problems.length, `problems: ${JSON.stringify(problems)}`).toBeGreaterThanOrEqual(1)
    expect(problems.join("\n")).toMatch(message)
  })
})

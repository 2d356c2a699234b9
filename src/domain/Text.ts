import { Schema } from "effect"

/**
 * Free text of API.md Conventions (`sku`, `name`, `reason`, `reference`), stated once: 1–512
 * characters of printable Unicode. PostgreSQL refuses NUL and invalid UTF-8 (SQLSTATE 22021), and
 * other control characters corrupt logs and CSV exports, so they are refused at the schema (400).
 */
export const MAX_FREE_TEXT = 512

/** U+0000–U+001F and U+007F, the C0 controls and DEL. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NO_CONTROL_CHARACTERS = /^[^\u0000-\u001f\u007f]*$/u

/** A lone UTF-16 surrogate (JSON `"\ud800"` parses to one): it has no UTF-8 encoding, the driver would store U+FFFD. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Why a string is not printable text, or undefined when it is. Also used for headers and consumed envelopes. */
export const unprintable = (s: string): string | undefined =>
  !NO_CONTROL_CHARACTERS.test(s)
    ? "must not contain control characters (U+0000-U+001F, U+007F)"
    : LONE_SURROGATE.test(s)
      ? "must be well-formed Unicode (no lone surrogates)"
      : undefined

/** 1–`max` characters of printable Unicode. */
export const printableText = (max: number) =>
  Schema.String.check(
    Schema.isMinLength(1, { message: "must not be empty" }),
    Schema.isMaxLength(max, { message: `must be at most ${max} characters` }),
    // The pattern documents the rule in the OpenAPI document; the filter also catches lone surrogates.
    Schema.isPattern(NO_CONTROL_CHARACTERS, { message: "must not contain control characters (U+0000-U+001F, U+007F)" }),
    Schema.makeFilter((s: string) => unprintable(s) ?? true)
  )

export const FreeText = printableText(MAX_FREE_TEXT).annotate({
  identifier: "FreeText",
  title: "FreeText",
  description: "1-512 characters of printable Unicode (no control characters U+0000-U+001F, U+007F)"
})

/** ClickHouse SQL text for values and names spliced into a statement (the store's inserts, the query endpoint's sessions). */

/** A ClickHouse string literal holding exactly `value`. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A backquoted ClickHouse identifier holding exactly `name`. */
export function quotedIdentifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

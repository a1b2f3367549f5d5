/**
 * What the endpoint reads from a statement, always from the engine's own
 * canonical rendering of it (`formatQuerySingleLine`, run by chDB on the
 * request's session): the engine parses, so comments, heredocs, odd casing
 * and multi-statements cannot hide anything; these helpers only look at
 * its output, where keywords are upper case, string literals are
 * single-quoted with backslash escapes and there are no comments.
 *
 * What may run is decided on the engine's parse (query/policy.ts); these
 * helpers read what the parse does not show well: the statement's leading
 * keyword, INTO OUTFILE / FROM INFILE (clickhouse-local's client side),
 * inline VALUES and the output format.
 */

/** The text with every quoted literal or identifier replaced by an empty one of the same kind. */
export function skeleton(canonical: string): string {
  let out = '';
  let i = 0;
  while (i < canonical.length) {
    const c = canonical[i]!;
    if (c === "'" || c === '"' || c === '`') {
      out += `${c}${c}`;
      i++;
      while (i < canonical.length) {
        const d = canonical[i]!;
        if (d === '\\') i += 2;
        else if (d === c && canonical[i + 1] === c) i += 2;
        else if (d === c) {
          i++;
          break;
        } else i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The statement's leading keyword, upper case (`SELECT` for a parenthesised union). */
export function statementKind(canonical: string): string {
  const m = /^[\s(]*([A-Za-z]+)/.exec(canonical);
  return (m?.[1] ?? '').toUpperCase();
}

/** INTO OUTFILE / FROM INFILE: clickhouse-local reads or writes a file of the host for them. */
export function hostFileClause(canonical: string): 'INTO OUTFILE' | 'FROM INFILE' | undefined {
  const s = skeleton(canonical);
  if (/\bINTO\s+OUTFILE\s+'/i.test(s)) return 'INTO OUTFILE';
  if (/\bFROM\s+INFILE\s+'/i.test(s)) return 'FROM INFILE';
  return undefined;
}

/** An INSERT whose inline data is in the Values format (`VALUES (…)` or `FORMAT Values`). */
export function insertsValues(canonical: string): boolean {
  return statementKind(canonical) === 'INSERT' && /\bFORMAT\s+Values\s*$/i.test(skeleton(canonical));
}

/** The output format a statement names (`… FORMAT JSON [SETTINGS …]`), if it names one. */
export function namedFormat(canonical: string): string | undefined {
  if (statementKind(canonical) === 'INSERT') return undefined;
  const s = skeleton(canonical);
  const all = [...s.matchAll(/\bFORMAT ([A-Za-z][A-Za-z0-9_]*)(?=\s+SETTINGS\b|\s*$)/g)];
  return all.at(-1)?.[1];
}

/** `text` split at `separator`s outside parentheses and quotes, each part trimmed, empty ones dropped (type arguments, column lists). */
export function splitTopLevel(text: string, separator = ','): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '`' || c === '"') {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === '\\') i++;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === separator && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter(Boolean);
}

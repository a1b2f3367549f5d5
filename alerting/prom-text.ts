/**
 * A parser for the Prometheus text exposition format (0.0.4) and the parts
 * of OpenMetrics 1.0 a scrape of perpass processes can return (`# EOF`,
 * exemplars after `#`, quoted UTF-8 metric and label names of Prometheus
 * 3). No maintained parser is installed and prom-client has none; the
 * pipeline-health rule needs samples of two metrics, so this reads samples
 * (name, labels, value, timestamp) and the metric families announced by
 * `# TYPE` / `# HELP`, and reports malformed lines with their number.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface PromExposition {
  samples: PromSample[];
  /** Families named by # TYPE or # HELP lines (a labelled counter never incremented has no sample, only these). */
  families: Map<string, string>;
}

export class PromParseError extends Error {
  override name = 'PromParseError';
}

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;

function parseValue(text: string): number {
  // As Prometheus reads a value (Go's strconv.ParseFloat): NaN, Inf and Infinity in any case, a sign only
  // on the infinities (prom-client writes NaN as "Nan").
  const special = /^(?:([+-]?)(?:inf|infinity)|nan)$/i.exec(text);
  if (special) return special[1] === undefined ? NaN : special[1] === '-' ? -Infinity : Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) && !/^[+-]?0x[0-9a-fA-F]+$/.test(text)) throw new PromParseError(`not a number: ${JSON.stringify(text)}`);
  return Number(text);
}

class LineReader {
  pos = 0;
  readonly line: string;
  constructor(line: string) {
    this.line = line;
  }
  peek(): string {
    return this.line[this.pos] ?? '';
  }
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  expect(ch: string): void {
    if (this.peek() !== ch) throw new PromParseError(`expected ${JSON.stringify(ch)} at column ${this.pos + 1}, found ${JSON.stringify(this.peek() || 'end of line')}`);
    this.pos++;
  }
  name(): string {
    if (this.peek() === '"') return this.quoted();
    const start = this.pos;
    if (!NAME_START.test(this.peek())) throw new PromParseError(`expected a name at column ${this.pos + 1}`);
    while (NAME_CHAR.test(this.peek())) this.pos++;
    return this.line.slice(start, this.pos);
  }
  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      const ch = this.line[this.pos++];
      if (ch === undefined) throw new PromParseError('unterminated quoted string');
      if (ch === '"') return out;
      if (ch === '\\') {
        const e = this.line[this.pos++];
        if (e === 'n') out += '\n';
        else if (e === '\\' || e === '"') out += e;
        else throw new PromParseError(`unknown escape \\${e ?? ''} in a quoted string`);
      } else out += ch;
    }
  }
  token(): string {
    const start = this.pos;
    while (this.pos < this.line.length && this.peek() !== ' ' && this.peek() !== '\t') this.pos++;
    return this.line.slice(start, this.pos);
  }
}

/** Parses one sample line. */
function parseSample(line: string): PromSample {
  const r = new LineReader(line);
  let name = r.peek() === '{' ? '' : r.name();
  const labels: Record<string, string> = {};
  r.skipSpace();
  if (r.peek() === '{') {
    r.pos++;
    for (;;) {
      r.skipSpace();
      if (r.peek() === '}') {
        r.pos++;
        break;
      }
      const key = r.name();
      r.skipSpace();
      if (r.peek() === ',' || r.peek() === '}') {
        // Prometheus 3: a bare quoted string inside the braces is the metric name
        if (name) throw new PromParseError(`label ${key} has no value`);
        name = key;
      } else {
        r.expect('=');
        r.skipSpace();
        labels[key] = r.quoted();
      }
      r.skipSpace();
      if (r.peek() === ',') r.pos++;
      else if (r.peek() !== '}') throw new PromParseError(`expected , or } at column ${r.pos + 1}`);
    }
  }
  if (!name) throw new PromParseError('sample has no metric name');
  r.skipSpace();
  const valueText = r.token();
  if (!valueText) throw new PromParseError(`sample ${name} has no value`);
  const value = parseValue(valueText);
  r.skipSpace();
  let timestampMs: number | undefined;
  if (r.peek() && r.peek() !== '#') {
    const ts = r.token();
    if (!/^-?\d+(\.\d+)?$/.test(ts)) throw new PromParseError(`bad timestamp ${JSON.stringify(ts)}`);
    // 0.0.4 timestamps are integer ms; OpenMetrics ones are seconds with a fraction
    timestampMs = ts.includes('.') ? Number(ts) * 1000 : Number(ts);
    r.skipSpace();
  }
  if (r.peek() && r.peek() !== '#') throw new PromParseError(`unexpected ${JSON.stringify(line.slice(r.pos))} after the value`);
  return { name, labels, value, ...(timestampMs !== undefined && { timestampMs }) };
}

export function parsePrometheusText(text: string): PromExposition {
  const samples: PromSample[] = [];
  const families = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(TYPE|HELP)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (m) {
        const family = m[2]!.startsWith('"') ? m[2]!.slice(1, -1) : m[2]!;
        if (m[1] === 'TYPE') families.set(family, (m[3] ?? 'untyped').trim());
        else if (!families.has(family)) families.set(family, 'untyped');
      }
      continue;
    }
    try {
      samples.push(parseSample(line));
    } catch (err) {
      throw new PromParseError(`line ${i + 1}: ${(err as Error).message}: ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`);
    }
  }
  return { samples, families };
}

import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { formatInstant, parseInstant } from '../contract/rows.ts';
import { anyValueToJs, nanosToBigInt } from '../otlp/codec.ts';

// the Long implementation protobufjs decodes int64 fields into
interface LongValue { low: number; high: number; unsigned: boolean; toString(): string; toNumber(): number }
const Long = protobuf.util.Long as unknown as { fromString(s: string, unsigned?: boolean): LongValue; fromNumber(n: number): LongValue };

describe('instants', () => {
  it('formats nanoseconds as DateTime64(9) text and parses it back, across seconds and before the epoch', () => {
    const cases: [bigint, string][] = [
      [1_780_000_000_123_456_789n, '2026-05-28 20:26:40.123456789'],
      [1_780_000_000_999_999_999n, '2026-05-28 20:26:40.999999999'],
      [1_780_000_001_000_000_000n, '2026-05-28 20:26:41.000000000'],
      [1_780_000_000_000_000_007n, '2026-05-28 20:26:40.000000007'],
      [0n, '1970-01-01 00:00:00.000000000'],
      [-1n, '1969-12-31 23:59:59.999999999'],
    ];
    for (const [nanos, text] of cases) {
      expect(formatInstant(nanos)).toBe(text);
      expect(parseInstant(text)).toBe(nanos);
    }
  });

  it('reads int64 values decoded as Long exactly, signed and unsigned', () => {
    const nanos = 1_780_000_000_123_456_789n;
    expect(nanosToBigInt(Long.fromString(nanos.toString(), true))).toBe(nanos);
    expect(nanosToBigInt(Long.fromString('18446744073709551615', true))).toBe(18_446_744_073_709_551_615n);
    expect(nanosToBigInt('42')).toBe(42n);
    expect(anyValueToJs({ intValue: Long.fromString('-9223372036854775808') })).toBe(-9_223_372_036_854_775_808n);
    expect(anyValueToJs({ intValue: Long.fromNumber(-5) })).toBe(-5);
    expect(anyValueToJs({ intValue: '12' })).toBe(12);
  });
});

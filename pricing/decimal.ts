/**
 * Exact decimal arithmetic for money. Costs are integers of atto-dollars
 * (1e-18 USD) held in bigint, so sums and divisions are the same whatever
 * the order of summation — a Float64 sum is not, and ClickHouse aggregates
 * in parallel. ClickHouse stores them as Decimal(38, 18), the same scale.
 */
export const USD_SCALE = 18;

const DECIMAL = /^([+-])?(\d+)?(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/**
 * A decimal number (a JS number, by its shortest round-trip text, or a
 * string) as an integer scaled by 10^scale. Throws when it has more
 * fractional digits than the scale holds, rather than rounding silently.
 */
export function toScaled(value: number | string, scale: number): bigint {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const m = DECIMAL.exec(text);
  if (!m || (m[2] === undefined && !m[3]) || !Number.isFinite(Number(text))) {
    throw new RangeError(`not a decimal number: ${JSON.stringify(value)}`);
  }
  const [, sign, int = '', frac = '', exp = '0'] = m;
  const digits = (int + frac).replace(/^0+(?=\d)/, '') || '0';
  const shift = Number(exp) - frac.length + scale; // value = digits × 10^(shift - scale)
  let scaled: bigint;
  if (shift >= 0) {
    scaled = BigInt(digits) * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    scaled = BigInt(digits) / divisor;
    if (scaled * divisor !== BigInt(digits)) {
      throw new RangeError(`${JSON.stringify(value)} has more than ${scale} decimal places`);
    }
  }
  return sign === '-' ? -scaled : scaled;
}

/** An integer scaled by 10^scale as a plain decimal string, without trailing zeros. */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${negative ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

export const formatUsd = (atto: bigint): string => formatScaled(atto, USD_SCALE);
export const parseUsd = (usd: number | string): bigint => toScaled(usd, USD_SCALE);

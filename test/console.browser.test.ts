/**
 * The web console in a real headless Chromium (Debian's package, driven by
 * playwright-core; no browser is downloaded) against a child `fleet start`
 * after `fleet demo` plus a second tenant's traffic. Checks the board's
 * $/pass against v_cost_per_pass read through the query endpoint, a filter,
 * a failing attempt's waterfall against fleet.spans / fleet.attempts, tenant
 * scoping, and that no request leaves 127.0.0.1. Takes the README's
 * screenshots into docs/console/.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planFleet } from '../demo/plan.ts';
import { sendFleet } from '../demo/send.ts';
import { until } from './support/polling.ts';
import { startFleet, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';
import { aptInstall } from './support/toolchains.ts';

const ALL = 'console-all-tenants';
const ACME = 'console-acme-only';
const SHOTS = path.resolve(import.meta.dirname, '../docs/console');
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let fleet: Child | undefined;
let context: BrowserContext | undefined;
let base = '';
const requests: string[] = [];

/** A statement through the query endpoint as the all-tenants reader, JSON rows back. */
async function read<T>(sql: string, token = ALL): Promise<T[]> {
  const res = await fetch(`${base}/?default_format=JSON&output_format_json_quote_64bit_integers=0`, { method: 'POST', body: sql, headers: { 'X-ClickHouse-Key': token } });
  const text = await res.text();
  if (!res.ok) throw new Error(`query endpoint ${res.status}: ${text}`);
  return (JSON.parse(text) as { data: T[] }).data;
}

async function openConsole(token: string, hash = '#/board', at = `${base}/console`): Promise<Page> {
  const page = await context!.newPage();
  await page.setViewportSize({ width: 1400, height: 900 });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${at}${hash}`);
  await page.locator('#token').fill(token);
  await page.locator('#token').press('Enter');
  await page.locator('#tenants').waitFor();
  return page;
}

type CostRow = { tenant: string; spec_tier: string; model: string; canary: string; variant: string; cost_per_pass: number | null; attempts: number };
const key = (r: { tenant: string; spec_tier: string; model: string; canary: string; variant: string }) => [r.tenant, r.spec_tier, r.model, r.canary, r.variant].join('|');

/** The board's rows as the page shows them: key, the $/pass text, its raw value. */
async function boardRows(page: Page): Promise<Array<{ key: string; text: string; value: string }>> {
  return page.locator('#board tbody tr').evaluateAll((trs) =>
    trs.map((tr) => {
      const d = (tr as unknown as { dataset: Record<string, string> }).dataset;
      const cell = tr.querySelector(".cpp") as unknown as { textContent: string; dataset: Record<string, string> };
      return { key: [d.tenant, d.tier, d.model, d.canary, d.variant].join('|'), text: cell.textContent!.trim(), value: cell.dataset.value! };
    }),
  );
}

beforeAll(async () => {
  await aptInstall(['chromium']);
  fleet = startFleet(['start', '--data-dir', tempDir('console'), '--collector-port', '0', '--query-port', '0', '--query-token', ALL, '--query-tokens', `${ACME}=acme`]);
  const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+)/);
  base = m[2]!;
  await fleet.waitFor(/console: http:\/\/[\d.]+:\d+\/console/);
  const demo = startFleet(['demo', '--endpoint', m[1]!, '--query-port', new URL(base).port, '--query-token', ALL, '--specs', '2']);
  // A second tenant, so scoping has something to hide.
  const acme = planFleet({ specsPerCell: 1, seed: 7, startNs: BigInt(Date.now()) * 1_000_000n, tenant: 'acme', specPrefix: 'acme' });
  await sendFleet(acme, { endpoint: m[1]!, tenant: 'acme' });
  await demo.waitFor(/all \d+ attempts visible/, 240_000);
  expect(await demo.exited).toBe(0);
  await until('the acme attempts', async () => (await read<{ n: number }>("SELECT count() AS n FROM fleet.attempts FINAL WHERE tenant = 'acme'"))[0]!.n === acme.length, 60_000, 250);
  mkdirSync(SHOTS, { recursive: true });
  context = await chromium.launchPersistentContext(tempDir('chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    // A zone away from UTC, so local times and their UTC titles differ.
    timezoneId: 'Asia/Kolkata',
    locale: 'en-US',
  });
}, 900_000);

afterAll(async () => {
  await context?.close();
  await fleet?.kill();
});

describe('the web console in headless Chromium', () => {
  it('asks for a token, then shows the known $/pass for every row of v_cost_per_pass', async () => {
    const expected = await read<CostRow>('SELECT tenant, spec_tier, model, canary, variant, cost_per_pass, attempts FROM fleet.v_cost_per_pass');
    expect(new Set(expected.map((r) => r.tenant))).toEqual(new Set(['default', 'acme']));
    expect(expected.some((r) => r.cost_per_pass === null)).toBe(true); // the demo has a model that never passes: ∞
    const page = await openConsole(ALL);
    await expect.poll(async () => (await boardRows(page)).length, { timeout: 15_000 }).toBe(expected.length);
    const shown = new Map((await boardRows(page)).map((r) => [r.key, r]));
    for (const e of expected) {
      const row = shown.get(key(e));
      expect(row, key(e)).toBeDefined();
      if (e.cost_per_pass === null) {
        expect(row!.text).toBe('∞');
      } else {
        expect(Number(row!.value)).toBeCloseTo(Number(e.cost_per_pass), 12);
        // Shown to three significant digits (two decimals from $1).
        const n = Number(e.cost_per_pass);
        expect(row!.text.replace(/ \*$/, '')).toBe(n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toPrecision(3)}`);
      }
    }
    // Low-N rows are flagged, and every row has its Wilson bar.
    expect(await page.locator('#board .lown').count()).toBe(expected.filter((r) => r.attempts < 10).length);
    expect(await page.locator('#board .wilson').count()).toBe(expected.length);
    await page.screenshot({ path: path.join(SHOTS, 'board.png'), fullPage: true });
    await page.close();
  });

  it('a filter changes the rows to those of the chosen model, and sorting by $/pass orders them', async () => {
    const page = await openConsole(ALL);
    await expect.poll(async () => (await boardRows(page)).length, { timeout: 15_000 }).toBeGreaterThan(0);
    const all = await boardRows(page);
    const model = all[0]!.key.split('|')[2]!;
    const expected = await read<CostRow>(`SELECT tenant, spec_tier, model, canary, variant, cost_per_pass, attempts FROM fleet.v_cost_per_pass WHERE model = '${model}'`);
    expect(expected.length).toBeLessThan(all.length);
    await page.locator('#f-model').selectOption(model);
    await expect.poll(async () => (await boardRows(page)).map((r) => r.key).sort(), { timeout: 15_000 }).toEqual(expected.map(key).sort());
    // Sorting is keyboard-reachable: focus the $/pass header's button and press Enter (descending after the default ascending).
    await page.getByRole('button', { name: /^\$\/pass/ }).focus();
    await page.keyboard.press('Enter');
    const values = (await boardRows(page)).map((r) => (r.value === '' ? Infinity : Number(r.value)));
    expect(values.filter(Number.isFinite)).toEqual([...values.filter(Number.isFinite)].sort((a, b) => b - a));
    // The routing pass-rate bar is editable: at 0 every (tenant, tier, model) of the window qualifies.
    await page.locator('#f-model').selectOption('');
    const [{ cells }] = (await read<{ cells: number }>('SELECT count() AS cells FROM (SELECT DISTINCT tenant, spec_tier, model FROM fleet.v_cost_per_pass)')) as [{ cells: number }];
    await page.locator('#routing-bar').fill('0');
    await expect.poll(() => page.locator('#routing tbody tr').count(), { timeout: 15_000 }).toBe(cells);
    await page.locator('#routing-bar').fill('1');
    await expect.poll(() => page.locator('#routing tbody tr').count(), { timeout: 15_000 }).toBe(0);
    await page.close();
  });

  it('a failing attempt opens its waterfall with the right spans and cost', async () => {
    // From the board: a row's failures open the failing attempts of that row's series.
    const page = await openConsole(ALL, '#/board');
    const row = page.locator('#board tbody tr', { has: page.locator('a.failures') }).first();
    await row.waitFor({ timeout: 15_000 });
    const [model, tier, tenant] = [await row.getAttribute('data-model'), await row.getAttribute('data-tier'), await row.getAttribute('data-tenant')];
    await row.locator('a.failures').click();
    await page.locator('#failing tbody tr').first().waitFor({ timeout: 15_000 });
    const cells = (n: number) => page.locator(`#failing tbody tr td:nth-child(${n})`).allTextContents();
    await expect.poll(async () => [...new Set([...(await cells(2)), ...(await cells(4)), ...(await cells(5))])].sort(), { timeout: 15_000 }).toEqual([model, tenant, tier].sort());
    const link = page.locator('#failing a[data-attempt]').first();
    await link.waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SHOTS, 'failing.png') });
    // Dates in the user's zone, UTC on hover.
    const time = page.locator('#failing time').first();
    const utc = (await time.getAttribute('title'))!;
    expect(utc).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);
    const instant = new Date(`${utc.slice(0, 23).replace(' ', 'T')}Z`);
    expect(await time.textContent()).toBe(instant.toLocaleString('en-US', { timeZone: 'Asia/Kolkata' }));
    const id = (await link.getAttribute('data-attempt'))!;
    await link.focus();
    await page.keyboard.press('Enter');
    const [truth] = await read<{ spans: number; llm: number; cost: string | null; outcome: string }>(
      `SELECT (SELECT count() FROM fleet.spans FINAL WHERE attempt_id = '${id}') AS spans,
              (SELECT count() FROM fleet.llm_calls FINAL WHERE attempt_id = '${id}') AS llm,
              toString(cost_usd) AS cost, toString(outcome) AS outcome FROM fleet.attempts FINAL WHERE attempt_id = '${id}'`,
    );
    expect(truth!.outcome).not.toBe('pass');
    expect(truth!.spans).toBeGreaterThan(1);
    await expect.poll(() => page.locator('#waterfall tbody tr').count(), { timeout: 15_000 }).toBe(truth!.spans);
    expect(await page.locator('#span-count').textContent()).toMatch(new RegExp(`^${truth!.spans} spans`));
    expect(await page.locator('#waterfall .bar.llm').count()).toBe(truth!.llm);
    expect(Number(await page.locator('#attempt-cost').getAttribute('data-value'))).toBeCloseTo(Number(truth!.cost), 12);
    // The LLM calls' costs add up to the attempt's.
    const callCosts = await page.locator('#waterfall .cost').allTextContents();
    expect(callCosts.length).toBe(truth!.llm);
    expect(await page.locator('#sample-reason').textContent()).not.toBe('');
    await page.screenshot({ path: path.join(SHOTS, 'attempt.png'), fullPage: true });
    await page.close();
  });

  it('a tenant-scoped token sees only its tenant', async () => {
    const expected = await read<CostRow>('SELECT tenant, spec_tier, model, canary, variant, cost_per_pass, attempts FROM fleet.v_cost_per_pass', ACME);
    expect(new Set(expected.map((r) => r.tenant))).toEqual(new Set(['acme']));
    const page = await openConsole(ACME);
    expect(await page.locator('#tenants').textContent()).toBe('tenants: acme');
    await expect.poll(async () => (await boardRows(page)).map((r) => r.key).sort(), { timeout: 15_000 }).toEqual(expected.map(key).sort());
    await page.goto(`${base}/console#/failing`);
    await page.locator('#failing tbody tr').first().waitFor({ timeout: 15_000 });
    const tenants = await page.locator('#failing tbody tr td:nth-child(2)').allTextContents();
    expect(new Set(tenants)).toEqual(new Set(['acme']));
    await page.close();
  });

  it('fleet console --clickhouse-url serves the same page with the caller\'s credentials passed on', async () => {
    // The embedded query endpoint speaks ClickHouse's HTTP interface, so it stands in for the server here.
    const proxy = startFleet(['console', '--clickhouse-url', base, '--console-port', '0']);
    try {
      const at = (await proxy.waitFor(/console: (http:\/\/127\.0\.0\.1:\d+\/console) →/))[1]!;
      const expected = await read<CostRow>('SELECT tenant, spec_tier, model, canary, variant, cost_per_pass, attempts FROM fleet.v_cost_per_pass', ACME);
      const page = await openConsole(ACME, '#/board', at);
      expect(await page.locator('#tenants').textContent()).toBe('tenants: acme');
      await expect.poll(async () => (await boardRows(page)).map((r) => r.key).sort(), { timeout: 15_000 }).toEqual(expected.map(key).sort());
      await page.close();
    } finally {
      await proxy.kill();
    }
  });

  it('a wrong token is refused and asked again', async () => {
    const page = await context!.newPage();
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${base}/console`);
    await page.locator('#token').fill('not-a-token');
    await page.locator('#token').press('Enter');
    await expect.poll(() => page.locator('#token-form [role=alert]').textContent(), { timeout: 10_000 }).toBe('That token was refused.');
    await page.close();
  });

  it('specs, prices, trends and alerts pages render; no request of any page left 127.0.0.1', async () => {
    const page = await openConsole(ALL, '#/specs');
    await page.locator('#specs tbody tr').first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SHOTS, 'specs.png') });
    await page.goto(`${base}/console#/prices`);
    await page.locator('#prices tbody tr').first().waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SHOTS, 'prices.png') });
    // Trends: the demo's attempts, in 1-minute buckets of the last hour; one chart per question.
    await page.goto(`${base}/console#/trends`);
    await page.locator('#t-window').selectOption('1');
    await expect.poll(() => page.locator('figure.chart canvas').count(), { timeout: 15_000 }).toBe(4);
    expect(await page.locator('figure.chart').evaluateAll((f) => f.map((e) => e.id))).toEqual(['chart-pass', 'chart-cpp', 'chart-kinds', 'chart-cache']);
    expect(await page.locator('#chart-pass').getAttribute('aria-label')).toBe('Pass rate (Wilson 95% band)');
    await page.screenshot({ path: path.join(SHOTS, 'trends.png'), fullPage: true });
    await page.goto(`${base}/console#/alerts`);
    await page.locator('#alerts').waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SHOTS, 'alerts.png') });
    await page.close();
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.filter((u) => new URL(u).hostname !== '127.0.0.1')).toEqual([]);
  });
});

/**
 * The views as they were before pre-aggregation: v_cost_per_pass_window as
 * sql/migrations/0002_views.sql defines it, every attempt of the window read
 * with FINAL. The exactness test compares the views against it row for row,
 * and `npm run bench -- query` times it as the baseline.
 */
import { listMigrations, renderStatements } from '../../sql/migrate.ts';

/** The raw view's `CREATE OR REPLACE VIEW … v_cost_per_pass_window …` statement, as 0002 renders it for `db`. */
export function rawCostPerPassView(db: string): string {
  const template = listMigrations().find((m) => m.version === 2)?.template ?? '';
  const statement = renderStatements(template, { database: db }).find((s) => s.includes(`VIEW ${db}.v_cost_per_pass_window`));
  if (!statement) throw new Error('0002_views.sql no longer defines v_cost_per_pass_window');
  return statement;
}

/** The raw v_cost_per_pass_window's SELECT; the window's bounds are SQL (query parameters by default). */
export function rawCostPerPassSql(db: string, since = '{since:DateTime64(9)}', until = '{until:DateTime64(9)}'): string {
  const statement = rawCostPerPassView(db);
  return statement
    .slice(statement.indexOf(' AS\n') + 4)
    .replaceAll('{since:DateTime64(9)}', since)
    .replaceAll('{until:DateTime64(9)}', until);
}

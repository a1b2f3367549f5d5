/**
 * The settings policy of the embedded query endpoint: which settings a
 * request may set, as a URL parameter or in a `SETTINGS` clause, and to
 * what. Default-deny: a setting not named here is refused, whatever a later
 * ClickHouse adds. Everything named here changes how a result is written or
 * tightens a limit; none names a file, a host, a disk or a filter.
 */
import type { Role } from './policy.ts';

/** Output-format settings: how a result is written, never what may run (and none names a schema file). */
const FORMAT_SETTINGS = [
  'extremes',
  'date_time_output_format',
  'interval_output_format',
  'session_timezone',
  'join_use_nulls',
  'format_csv_delimiter',
  'format_csv_null_representation',
  'format_tsv_null_representation',
  'output_format_json_quote_64bit_integers',
  'output_format_json_quote_64bit_floats',
  'output_format_json_quote_denormals',
  'output_format_json_quote_decimals',
  'output_format_json_escape_forward_slashes',
  'output_format_json_named_tuples_as_objects',
  'output_format_json_array_of_rows',
  'output_format_json_validate_utf8',
  'output_format_json_pretty_print',
  'output_format_json_map_as_array_of_tuples',
  'output_format_write_statistics',
  'output_format_decimal_trailing_zeros',
  'output_format_csv_crlf_end_of_line',
  'output_format_tsv_crlf_end_of_line',
  'output_format_pretty_max_rows',
  'output_format_pretty_max_column_pad_width',
  'output_format_pretty_max_value_width',
  'output_format_pretty_color',
  'output_format_pretty_grid_charset',
  'output_format_pretty_row_numbers',
  'output_format_pretty_display_footer_column_names',
  'output_format_pretty_single_large_number_tip_threshold',
  'output_format_native_encode_types_in_binary_format',
  'output_format_native_write_json_as_string',
  'output_format_binary_write_json_as_string',
  'output_format_arrow_string_as_string',
  'output_format_arrow_low_cardinality_as_dictionary',
  'output_format_arrow_fixed_string_as_fixed_byte_array',
  'output_format_arrow_compression_method',
  'output_format_parquet_string_as_string',
  'output_format_parquet_compression_method',
  'output_format_orc_string_as_string',
  // The HTTP interface's own, which clients also send as settings.
  'enable_http_compression',
  'wait_end_of_query',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  // Read-path optimisations perpass's own queries and views use.
  'do_not_merge_across_partitions_select_final',
];

/** How a writer's INSERT data is read (text formats only; no expression evaluation, see WRITER_FIXED). */
const INPUT_SETTINGS = [
  'date_time_input_format',
  'input_format_skip_unknown_fields',
  'input_format_null_as_default',
  'input_format_defaults_for_omitted_fields',
  'input_format_import_nested_json',
  'input_format_json_read_numbers_as_strings',
  'input_format_allow_errors_num',
  'input_format_allow_errors_ratio',
  'insert_deduplicate',
  'mutations_sync',
  'alter_sync',
];

/** Settings of a MergeTree table a writer may give in `CREATE TABLE … SETTINGS` / `MODIFY SETTING` (not `disk`, `storage_policy`, …). */
export const STORAGE_SETTINGS: ReadonlySet<string> = new Set([
  'ttl_only_drop_parts',
  'index_granularity',
  'index_granularity_bytes',
  'min_bytes_for_wide_part',
  'min_rows_for_wide_part',
  'merge_with_ttl_timeout',
  'allow_nullable_key',
  'deduplicate_merge_projection_mode',
  'lightweight_mutation_projection_mode',
  'min_compress_block_size',
  'max_compress_block_size',
]);

/**
 * Settings every writer session carries and no request may change:
 * ClickHouse evaluates SQL expressions inside `VALUES` data, which is no
 * part of the statement the policy checks (`INSERT … VALUES (file('…'))`).
 */
export const WRITER_FIXED: ReadonlyArray<[string, string]> = [
  ['input_format_values_interpret_expressions', '0'],
  ['input_format_values_deduce_templates_of_expressions', '0'],
];

/**
 * The endpoint answers in an HTTP compression the client offers
 * (`Accept-Encoding`) unless the request sets `enable_http_compression=0`,
 * as a server whose settings profile turns it on. A reader's `readonly=1`
 * shows every setting as unchangeable in system.settings, and
 * clickhouse-connect asks for compression only when the setting is on or
 * changeable there: on, it does.
 */
export const HTTP_COMPRESSION_DEFAULT = '1';

/**
 * Settings every session carries, reader or writer: chDB turns introspection
 * on (the policy refuses those functions too); HTTP compression as above.
 */
export const ALL_FIXED: ReadonlyArray<[string, string]> = [
  ['allow_introspection_functions', '0'],
  ['enable_http_compression', HTTP_COMPRESSION_DEFAULT],
];

/**
 * Settings every tenant-scoped reader session carries: answers that could
 * come from table metadata instead of the (filtered) rows are computed from
 * the rows.
 */
export const SCOPED_FIXED: ReadonlyArray<[string, string]> = [
  ['optimize_trivial_count_query', '0'],
  ['optimize_use_implicit_projections', '0'],
  ['optimize_use_projections', '0'],
];

/** Settings the endpoint gives its sessions values of its own: sending the engine's default for them is a change, not a no-op. */
const ENDPOINT_SET = new Set([
  'readonly', 'max_memory_usage', 'max_result_bytes', 'result_overflow_mode', 'max_threads', 'max_execution_time', 'max_query_size', 'additional_table_filters',
  ...WRITER_FIXED.map(([k]) => k),
  ...ALL_FIXED.map(([k]) => k),
  ...SCOPED_FIXED.map(([k]) => k),
]);

/**
 * Whether `name = value` may pass although not allowed: it is the value the
 * session already has, so it changes nothing (clients send some settings
 * with every request; ClickHouse's readonly lets the same through).
 */
export function unchanged(name: string, value: string, defaults: ReadonlyMap<string, string>): boolean {
  return !ENDPOINT_SET.has(name) && defaults.get(name) === value;
}

export interface SettingsLimits {
  /** Cap on max_execution_time (seconds). */
  maxExecutionTimeSec: number;
  /** Cap on max_threads. */
  maxThreads: number;
  /** Cap on a reader's max_result_bytes; 0 = none. */
  maxResultBytes: number;
}

const nonNegativeInt = (v: string) => /^\d{1,18}$/.test(v.trim());
const boolean = (v: string) => /^(0|1|true|false)$/i.test(v.trim());

/**
 * A URL parameter's value as the session gets it: a `max_execution_time`
 * above the cap runs with the cap, since clickhouse-go (hence Grafana)
 * sends its query deadline + 5 s this way. Only for URL parameters, whose
 * value the endpoint alone hands the engine; in a `SETTINGS` clause the
 * engine would apply the statement's own value, so there it is refused
 * (settingRefusal). Anything else is returned as sent.
 */
export function cappedUrlSetting(name: string, value: string, limits: SettingsLimits): string {
  if (name !== 'max_execution_time') return value;
  const v = value.trim();
  const number = Number(v);
  return v !== '' && Number.isFinite(number) && number > limits.maxExecutionTimeSec ? String(limits.maxExecutionTimeSec) : value;
}

/** Why `name = value` is refused to `role` (`scoped`: a tenant-scoped reader), or undefined when it is allowed. */
export function settingRefusal(role: Role, name: string, value: string, limits: SettingsLimits, scoped = false): string | undefined {
  const v = value.trim();
  const number = Number(v);
  switch (name) {
    case 'additional_table_filters':
      // A filter only narrows what is read (Grafana's ad hoc filters send it); a scoped reader's carries its tenant and stays.
      if (scoped) return "additional_table_filters holds this reader's tenant filter and cannot be changed";
      return /^\{[\s\S]*\}$/.test(v) ? undefined : 'additional_table_filters must be a map literal';
    case 'readonly': {
      const inForce = role === 'reader' ? '1' : '0';
      return v === inForce ? undefined : `readonly can only be ${inForce} here (the value in force)`;
    }
    case 'max_execution_time':
      return v !== '' && Number.isFinite(number) && number > 0 && number <= limits.maxExecutionTimeSec
        ? undefined
        : `max_execution_time must be in (0, ${limits.maxExecutionTimeSec}]: a limit may be tightened, not lifted`;
    case 'max_threads':
      return nonNegativeInt(v) && number >= 1 && number <= limits.maxThreads ? undefined : `max_threads must be in [1, ${limits.maxThreads}]`;
    case 'max_result_rows':
    case 'limit':
    case 'offset':
      return nonNegativeInt(v) ? undefined : `${name} must be a non-negative integer`;
    case 'max_result_bytes':
      if (!nonNegativeInt(v)) return 'max_result_bytes must be a non-negative integer';
      return role === 'reader' && limits.maxResultBytes > 0 && (number === 0 || number > limits.maxResultBytes)
        ? `max_result_bytes must be in [1, ${limits.maxResultBytes}]: a limit may be tightened, not lifted`
        : undefined;
    case 'result_overflow_mode':
      return /^(throw|break)$/.test(v) ? undefined : 'result_overflow_mode must be throw or break';
    case 'http_zlib_compression_level':
      return nonNegativeInt(v) && number >= 1 && number <= 9 ? undefined : 'http_zlib_compression_level must be in [1, 9]';
    case 'enable_http_compression':
    case 'wait_end_of_query':
    case 'send_progress_in_http_headers':
    case 'extremes':
    case 'join_use_nulls':
      return boolean(v) ? undefined : `${name} must be 0 or 1`;
  }
  if (FORMAT_SETTINGS.includes(name)) return undefined;
  if (role === 'writer' && INPUT_SETTINGS.includes(name)) return undefined;
  return `the setting '${name}' is not allowed over the embedded query endpoint (only output-format settings and tightened limits are)`;
}

/** Why the table setting `name` is refused to a writer, or undefined. */
export function storageSettingRefusal(name: string): string | undefined {
  return STORAGE_SETTINGS.has(name) ? undefined : `the table setting '${name}' is not allowed over the embedded query endpoint (allowed: ${[...STORAGE_SETTINGS].join(', ')})`;
}

/**
 * Binary INSERT data for a writer (write mode): `INSERT INTO t [(cols)]
 * FORMAT RowBinary…|Native` in the URL, the rows as the request body, as a
 * ClickHouse server takes them (the consumers write RowBinaryWithDefaults,
 * storage/row-binary.ts). chDB reads inline INSERT data as text, so the
 * body is spooled to a file of the endpoint's own and the statement runs
 * with `FROM INFILE` naming it: the one file the clause can name, added
 * after the policy has checked the statement as sent (which refuses a
 * client's own FROM INFILE).
 */
import { stringLiteral } from '../storage/sql-text.ts';
import { withSpoolFile } from '../storage/spool.ts';

/** A plain INSERT whose data is in a binary format, statement in the URL and nothing after the format's name. */
const BINARY_INSERT = /^\s*INSERT\s+INTO\s+(?:TABLE\s+)?(?:[A-Za-z_][\w]*|`(?:[^`\\]|\\.)+`)(?:\.(?:[A-Za-z_][\w]*|`(?:[^`\\]|\\.)+`))?\s*(?:\([^()]*\)\s*)?FORMAT\s+(RowBinary|RowBinaryWithDefaults|RowBinaryWithNames|RowBinaryWithNamesAndTypes|Native)\s*;?\s*$/i;

/** The binary format `statement` inserts in, or undefined when its data is text (or it is not such an INSERT). */
export function binaryInsertFormat(statement: string): string | undefined {
  return BINARY_INSERT.exec(statement)?.[1];
}

/**
 * Runs `statement` (checked by binaryInsertFormat and the policy) with its
 * data read from a file of the store's spool under `dataDir`.
 */
export function withSpooledData<T>(dataDir: string, statement: string, data: Uint8Array, run: (sql: string) => Promise<T>): Promise<T> {
  return withSpoolFile(dataDir, 'http', [data], (file) =>
    run(statement.replace(/\bFORMAT\s+(\w+)\s*;?\s*$/i, (_, format: string) => `FROM INFILE ${stringLiteral(file)} FORMAT ${format}`)),
  );
}

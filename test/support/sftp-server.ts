// Test helper: a real OpenSSH sshd + internal-sftp on 127.0.0.1, driven by the real /usr/bin/sftp client.
// scripts/sftp-server.sh fetches and unpacks sshd into .tools/openssh/ (once; cached), writes keys and
// config into the state dir and starts sshd in the background. This module picks a free port, runs
// that script, and drives `sftp -b -` with batch commands on stdin.
//
//   const problem = await sftpSetupProblem();          // undefined when usable, else the reason
//   assert.equal(problem, undefined, problem);           // fail loudly rather than skip silently
//   const server = await startSftpServer(stateDir);
//   try { await server.upload('/tmp/a.csv', '/srv/in/a.csv'); } finally { await server.stop(); }
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SftpServer {
  readonly host: string;
  readonly port: number;
  /** The login user: root when tests run as root, otherwise the current user (sshd can only log in as itself). */
  readonly user: string;
  /** Client private key accepted by the server. */
  readonly keyFile: string;
  /** known_hosts holding the server's host key for [127.0.0.1]:port. */
  readonly knownHostsFile: string;
  /** An ssh_config with Host `sftppush-test` set up, usable as `sftp -F <file> sftppush-test`. */
  readonly sshConfigFile: string;
  readonly stateDir: string;
  /** sshd's own log (connections, auth failures). */
  readonly logFile: string;
  /** Arguments for `sftp` before the destination (port, key, host-key checking, batch mode). */
  readonly sftpArgs: readonly string[];
  /** `user@127.0.0.1` */
  readonly destination: string;
  /** `put localFile remotePath` in one sftp session. */
  upload(localFile: string, remotePath: string): Promise<void>;
  /**
   * Runs the commands as one `sftp -b -` session. sftp aborts at the first failing command (prefix a
   * command with '-' to ignore its failure) and this rejects with sftp's stderr and sshd's log tail.
   * Resolves with sftp's stdout (each command is echoed as `sftp> cmd`, followed by its output).
   * Paths with spaces or quotes must be quoted: see sftpQuote().
   */
  batch(commands: readonly string[], options?: { timeoutMs?: number }): Promise<string>;
  /** Stops sshd; safe to call twice. */
  stop(): Promise<void>;
}

const SCRIPT_START_ATTEMPTS = 5;
const DEFAULT_SFTP_TIMEOUT_MS = 60_000;

function findRepoRoot(): string {
  // Works both from test/support/*.ts and from dist/test/support/*.js.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'scripts', 'sftp-server.sh')) && existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('sftp-server helper: cannot find scripts/sftp-server.sh above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

const SCRIPT = join(findRepoRoot(), 'scripts', 'sftp-server.sh');

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env };
    delete env.SSH_AUTH_SOCK; // the key is given explicitly; an agent only adds noise
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading all of stdin; its exit status tells what happened */
    });
    child.stdin.end(opts.input ?? '');
  });
}

function describe(r: RunResult): string {
  return r.signal ? `killed by ${r.signal}` : `exit ${String(r.code)}`;
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). Another process could take it before sshd binds; start retries. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read the port of a listening socket'));
        return;
      }
      srv.close(() => resolvePromise(addr.port));
    });
  });
}

/**
 * Quotes one argument for an sftp batch line. Backslash, newline and NUL are not supported.
 * Set glob for arguments that sftp expands as a glob (the local file of put/reput, the remote file of
 * get/ls/rm) so that `*`, `?` and `[` are literal. Those are backslash-escaped outside quotes: with
 * OpenSSH 9.2, `"a \*b"` fails to match a file named `a *b`, while `a\ \*b` matches it.
 */
export function sftpQuote(arg: string, glob = false): string {
  if (/[\\\n\r\0]/.test(arg)) throw new Error(`sftpQuote: unsupported character in ${JSON.stringify(arg)}`);
  if (glob) return arg.replace(/[ \t'"*?[]/g, (c) => '\\' + c);
  return `"${arg.replace(/"/g, '\\"')}"`;
}

let setupProblem: Promise<string | undefined> | undefined;

/**
 * Why an sftp test server can't be used here, or undefined when it can. Checks the client tools and
 * fetches sshd (the first call may download a few hundred KB from Debian's archive). Memoized.
 */
export function sftpSetupProblem(): Promise<string | undefined> {
  setupProblem ??= (async () => {
    if (process.platform !== 'linux') return `needs Linux (Debian packages), this is ${process.platform}`;
    const tools = await run('bash', ['-c', 'for t in sftp ssh-keygen apt-get dpkg flock; do command -v "$t" >/dev/null || echo "$t"; done']);
    const missing = tools.stdout.trim().split(/\s+/).filter(Boolean);
    if (missing.length > 0) return `missing tools on PATH: ${missing.join(', ')}`;
    const fetched = await run('bash', [SCRIPT, 'fetch'], { timeoutMs: 300_000 });
    if (fetched.code !== 0) return `${SCRIPT} fetch failed (${describe(fetched)}): ${fetched.stderr.trim()}`;
    return undefined;
  })();
  return setupProblem;
}

export async function sftpAvailable(): Promise<boolean> {
  return (await sftpSetupProblem()) === undefined;
}

// sshd runs detached from this process (the script backgrounds it, in a session of its own, so a Ctrl-C
// at the terminal never reaches it); make sure none outlives a test run whose test forgot stop(), crashed, or
// was interrupted: on exit, and on SIGINT, SIGTERM or SIGHUP, which are then delivered again as they came.
const livePids = new Set<number>();
let exitHookInstalled = false;
function trackPid(pid: number): void {
  livePids.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', stopLive);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      stopLive();
      process.kill(process.pid, signal);
    });
  }
}

function stopLive(): void {
  for (const p of livePids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  livePids.clear();
}

function parseInfo(stdout: string): Map<string, string> {
  const info = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) info.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return info;
}

function need(info: Map<string, string>, key: string): string {
  const v = info.get(key);
  if (v === undefined || v === '') throw new Error(`scripts/sftp-server.sh start printed no ${key}`);
  return v;
}

/**
 * Starts sshd on 127.0.0.1 on a free port, keeping keys, config and log in stateDir (created if needed).
 * Rejects with the script's stderr (sshd's log) if it can't start.
 */
export async function startSftpServer(stateDir: string): Promise<SftpServer> {
  const problem = await sftpSetupProblem();
  if (problem !== undefined) throw new Error(`sftp test server unavailable: ${problem}`);
  const dir = resolve(stateDir);

  let started: RunResult | undefined;
  let port = 0;
  for (let attempt = 1; attempt <= SCRIPT_START_ATTEMPTS; attempt++) {
    port = await freePort();
    started = await run('bash', [SCRIPT, 'start', dir, String(port)], { timeoutMs: 120_000 });
    if (started.code !== 3) break; // 3: the port was taken between freePort() and sshd's bind
  }
  if (started === undefined || started.code !== 0) {
    throw new Error(`scripts/sftp-server.sh start failed (${started ? describe(started) : 'not run'}):\n${started?.stderr ?? ''}`);
  }

  const info = parseInfo(started.stdout);
  const pid = Number(need(info, 'SFTP_PID'));
  trackPid(pid);
  const user = need(info, 'SFTP_USER');
  const host = need(info, 'SFTP_HOST');
  const keyFile = need(info, 'SFTP_KEY');
  const knownHostsFile = need(info, 'SFTP_KNOWN_HOSTS');
  const logFile = need(info, 'SFTP_LOG');
  // The host key is known, so check it (stricter than StrictHostKeyChecking=no: a stray server on a reused port is caught).
  const sftpArgs: readonly string[] = [
    '-F', 'none',
    '-i', keyFile,
    '-P', String(port),
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHostsFile}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10',
    // The default post-quantum kex (sntrup761) costs ~0.15 s of CPU per connection on each side; tests
    // open many sessions and the key exchange is not what they test.
    '-o', 'KexAlgorithms=curve25519-sha256',
    '-o', 'LogLevel=ERROR',
  ];
  const destination = `${user}@${host}`;
  let stopped: Promise<void> | undefined;

  const logTail = async (): Promise<string> => {
    const r = await run('tail', ['-n', '20', logFile]);
    return r.stdout;
  };

  const batch = async (commands: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> => {
    if (stopped) throw new Error('sftp server already stopped');
    for (const c of commands) if (/[\n\r]/.test(c)) throw new Error(`sftp batch command contains a newline: ${JSON.stringify(c)}`);
    const r = await run('sftp', ['-b', '-', ...sftpArgs, destination], {
      input: commands.map((c) => c + '\n').join(''),
      timeoutMs: options.timeoutMs ?? DEFAULT_SFTP_TIMEOUT_MS,
    });
    if (r.code !== 0) {
      throw new Error(
        `sftp batch failed (${describe(r)}) for:\n  ${commands.join('\n  ')}\n` +
          `stderr:\n${r.stderr}stdout:\n${r.stdout}sshd log tail (${logFile}):\n${await logTail()}`,
      );
    }
    return r.stdout;
  };

  return {
    host,
    port,
    user,
    keyFile,
    knownHostsFile,
    sshConfigFile: need(info, 'SFTP_SSH_CONFIG'),
    stateDir: dir,
    logFile,
    sftpArgs,
    destination,
    batch,
    async upload(localFile: string, remotePath: string): Promise<void> {
      await batch([`put ${sftpQuote(localFile, true)} ${sftpQuote(remotePath)}`]);
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        const r = await run('bash', [SCRIPT, 'stop', dir], { timeoutMs: 30_000 });
        livePids.delete(pid);
        if (r.code !== 0) throw new Error(`scripts/sftp-server.sh stop failed (${describe(r)}): ${r.stderr}`);
      })();
      return stopped;
    },
  };
}

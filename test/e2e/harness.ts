// End-to-end harness: a real Linux guest (examples/guest) booted under the real hostinfo-qemu
// (bin/hostinfo-qemu, the shell front that plans with the compiled launcher and then becomes
// QEMU), with its own host config, policy directory and runtime directory per test. The hostinfod
// the front autostarts outlives each VM by design; teardown stops it by its --runtime-dir.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The compiled harness lives in <outdir>/test/e2e/ and the repository root is three levels up
// (outdir is dist/ at the root); the front runs <root>/dist/launcher/main.js.
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const FRONT = path.join(REPO, 'bin', 'hostinfo-qemu');
export const GUEST_DIR = path.join(REPO, 'examples', 'guest');
export const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const EX_NONET = 75; // build.sh: no kernel could be fetched because apt has no network

/** The bound on one guest boot under TCG (about 5 s alone, more with other tests running). */
export const BOOT_MS = 90_000;
export const APPEND = 'console=ttyS0 panic=-1 quiet';
/** QEMU arguments every booting test uses (TCG only: KVM is not usable nested here). */
export const MACHINE = ['-accel', 'tcg', '-M', 'pc', '-m', '256', '-no-reboot'] as const;

export interface Teardown {
  teardown(fn: () => unknown): void;
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Rejects when `promise` has not settled within `ms` (a bound on an event wait, not a sleep). */
export function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls a condition that no event announces (a process appearing in /proc), within a bound. */
export async function until(condition: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export type GuestImage = { readonly kind: 'ready'; readonly dir: string } | { readonly kind: 'skip'; readonly reason: string };

/** Builds (or finds cached) the guest kernel and initramfs. Skips only on build.sh's exit 75. */
export async function guestImage(): Promise<GuestImage> {
  const build = await run('bash', [path.join(GUEST_DIR, 'build.sh')]);
  if (build.code === EX_NONET) {
    return { kind: 'skip', reason: `no guest kernel: examples/guest/build.sh could not fetch one because apt has no network (${build.stderr.trim().split('\n')[0] ?? ''})` };
  }
  if (build.code !== 0) throw new Error(`examples/guest/build.sh failed (${build.code}):\n${build.stderr}`);
  const dir = build.stdout.trimEnd().split('\n').at(-1) ?? '';
  if (!path.isAbsolute(dir)) throw new Error(`build.sh did not print its cache directory: ${build.stdout}`);
  return { kind: 'ready', dir };
}

// ------------------------------------------------------------------------------------ processes

/** Direct children of `pid` (from /proc/<pid>/task/<tid>/children, one file per thread). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const word of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(/\s+/)) {
        if (word !== '') out.push(Number(word));
      }
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter((s) => s !== '');
  } catch {
    return [];
  }
}

/** Every hostinfo-sidecar process running: node running sidecar/main.js, with its arguments. */
export function sidecarProcesses(): { readonly pid: number; readonly args: string[] }[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number)
    .map((pid) => ({ pid, args: cmdlineOf(pid) }))
    .filter(({ args }) => args[1]?.endsWith('sidecar/main.js') === true);
}

/**
 * The sidecars serving QEMU `qemuPid` (`--qemu-pid PID`). Before a sidecar is node it is setpriv,
 * still root, about to drop to the sidecar user: not counted.
 */
export function sidecarsServing(qemuPid: number): number[] {
  return sidecarProcesses().filter(({ args }) => args[args.indexOf('--qemu-pid') + 1] === String(qemuPid) && args.includes('--qemu-pid')).map(({ pid }) => pid);
}

/** Running (a zombie nobody reaped is not). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** QEMU, with its arguments in place (right after execve the exe is set before the cmdline). */
export function isQemu(pid: number): boolean {
  try {
    return path.basename(readlinkSync(`/proc/${pid}/exe`)).startsWith('qemu-system') && cmdlineOf(pid).length > 1;
  } catch {
    return false;
  }
}

/** The hostinfod processes serving `runtimeDir` (their command line names it). */
export function daemonsOf(runtimeDir: string): number[] {
  return spawnSync('pgrep', ['-f', '--', `--runtime-dir ${runtimeDir}( |$)`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
}

function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

// ----------------------------------------------------------------------------------------- host

export interface Host {
  readonly dir: string;
  readonly configPath: string;
  readonly policyDir: string;
  readonly runtimeDir: string;
  /** A per-VM policy file, <policy_dir>/<name>.toml. */
  policy(name: string, toml: string): Promise<void>;
  /** An initrd that runs `script` as /guest.sh. */
  initrd(script: string): Promise<string>;
  /** <runtime_dir>/vms/<vmDirName>/: exists while the VM is served. */
  vmDir(vmDirName: string): string;
  sidecarLog(vmDirName: string): Promise<LogLine[]>;
  daemonLog(): Promise<LogLine[]>;
}

export type LogLine = Record<string, unknown>;

function parseLog(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      lines.push({ unparsed: line });
    }
  }
  return lines;
}

/**
 * A temp directory with hostinfo.toml (enabled, fast cache sampling), an empty policy dir and a
 * runtime dir. Teardown stops the hostinfod the front autostarted there (SIGTERM: it stops its
 * sidecars; SIGKILL if it lingers) and removes everything.
 */
export async function makeHost(t: Teardown, image: string): Promise<Host> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hie2e-'));
  const configPath = path.join(dir, 'hostinfo.toml');
  const policyDir = path.join(dir, 'policies');
  const runtimeDir = path.join(dir, 'run');
  await mkdir(policyDir);
  await writeFile(configPath, ['enabled = true', `policy_dir = ${JSON.stringify(policyDir)}`, '', '[cache]', 'interval = 0.2', 'max_age = 2', ''].join('\n'));
  const host: Host = {
    dir,
    configPath,
    policyDir,
    runtimeDir,
    policy: (name, toml) => writeFile(path.join(policyDir, `${name}.toml`), toml),
    async initrd(script) {
      const scriptPath = path.join(dir, `guest-${Math.random().toString(36).slice(2)}.sh`);
      const out = `${scriptPath}.initrd.gz`;
      // SeaBIOS may print the last dot of "Booting from ROM..." after the kernel's screen reset,
      // with no newline: the script's first output line starts on a line of its own.
      const lines = script.split('\n');
      const first = lines[0]?.startsWith('#!') === true ? 1 : 0;
      lines.splice(first, 0, 'echo');
      await writeFile(scriptPath, lines.join('\n'));
      const ws = await run(path.join(GUEST_DIR, 'with-script.sh'), [scriptPath, out, path.join(image, 'initramfs.cpio.gz')]);
      if (ws.code !== 0) throw new Error(`with-script.sh failed (${ws.code}): ${ws.stderr}`);
      return out;
    },
    vmDir: (vmDirName) => path.join(runtimeDir, 'vms', vmDirName),
    sidecarLog: async (vmDirName) => parseLog(await readFile(path.join(runtimeDir, 'logs', `${vmDirName}.sidecar.log`), 'utf8')),
    daemonLog: async () => parseLog(await readFile(path.join(runtimeDir, 'logs', 'hostinfod.log'), 'utf8').catch(() => '')),
  };
  t.teardown(async () => {
    const daemons = daemonsOf(runtimeDir);
    for (const pid of daemons) killPid(pid, 'SIGTERM');
    await until(() => !daemons.some(alive), 10_000, () => `hostinfod ${daemons.join(', ')} to stop`).catch(() => {
      for (const pid of daemons) killPid(pid, 'SIGKILL');
    });
    await rm(dir, { recursive: true, force: true });
  });
  return host;
}

// ------------------------------------------------------------------------------------- launcher

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LaunchOptions {
  /**
   * Run it from `sh -c '"$@"; exit $?'`, as a user's script would: the exit status is then what
   * the shell reports ($?: 128+n for a death by signal n), and QEMU is the shell's child.
   */
  readonly shell?: boolean;
}

/**
 * hostinfo-qemu as a user runs it (bin/hostinfo-qemu), with stdio on pipes. The process started
 * becomes QEMU: `child` is QEMU itself (or, with `shell`, the shell whose child QEMU is).
 */
export class Launcher {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout = ''; // \r removed
  stderr = '';
  readonly #watchers: { test: (out: string) => boolean; resolve: () => void }[] = [];
  readonly #lineHooks: ((line: string) => void)[] = [];
  #partial = '';

  readonly #shell: boolean;

  constructor(t: Teardown, host: Host, launcherArgs: readonly string[], qemuArgs: readonly string[], options: LaunchOptions = {}) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HOSTINFO_')));
    const args = ['--config', host.configPath, '--runtime-dir', host.runtimeDir, ...launcherArgs, '--', ...qemuArgs];
    this.#shell = options.shell === true;
    this.child = spawn(this.#shell ? 'sh' : FRONT, this.#shell ? ['-c', '"$@"; exit $?', 'sh', FRONT, ...args] : args, {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdin?.on('error', () => {});
    this.child.stdout?.setEncoding('latin1').on('data', (s: string) => {
      const text = s.replace(/\r/g, '');
      this.stdout += text;
      this.#partial += text;
      for (let nl = this.#partial.indexOf('\n'); nl >= 0; nl = this.#partial.indexOf('\n')) {
        const line = this.#partial.slice(0, nl);
        this.#partial = this.#partial.slice(nl + 1);
        for (const hook of this.#lineHooks) hook(line);
      }
      this.#check();
    });
    this.child.stderr?.setEncoding('latin1').on('data', (s: string) => {
      this.stderr += s;
      this.#check();
    });
    const pid = this.child.pid;
    t.teardown(async () => {
      if (pid === undefined || !this.running) return;
      // The process started is QEMU (with `shell`, QEMU is its child): by pid, nothing else.
      for (const child of childrenOf(pid)) killPid(child);
      killPid(pid);
      await this.exited;
    });
  }

  /** stdout without terminal control sequences: what a user reads on the console. */
  get console(): string {
    return stripEscapes(this.stdout);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Runs `hook` on every complete stdout line as it arrives (\r removed). */
  onLine(hook: (line: string) => void): void {
    this.#lineHooks.push(hook);
  }

  /** Resolves once stdout or stderr matches. */
  output(pattern: RegExp, ms = BOOT_MS): Promise<void> {
    const test = (): boolean => pattern.test(this.stdout) || pattern.test(this.stderr);
    if (test()) return Promise.resolve();
    return within(new Promise<void>((resolve) => this.#watchers.push({ test, resolve })), ms, () => `launcher output ${pattern}; stdout:\n${this.stdout.slice(-3000)}\nstderr:\n${this.stderr.slice(-2000)}`);
  }

  exit(ms = BOOT_MS): Promise<Exit> {
    return within(this.exited, ms, () => `the launcher to exit; stdout:\n${this.stdout.slice(-3000)}\nstderr:\n${this.stderr.slice(-2000)}`);
  }

  /** QEMU's pid, once the front has become QEMU: the pid started (with `shell`, the shell's child). */
  async qemuPid(ms = 30_000): Promise<number> {
    const started = this.child.pid ?? -1;
    const find = (): number | undefined => (this.#shell ? childrenOf(started) : [started]).find(isQemu);
    await until(() => find() !== undefined, ms, () => 'hostinfo-qemu to become QEMU');
    return find() ?? -1;
  }

  #check(): void {
    for (const watcher of [...this.#watchers]) {
      if (watcher.test(this.stdout)) {
        this.#watchers.splice(this.#watchers.indexOf(watcher), 1);
        watcher.resolve();
      }
    }
  }
}

/**
 * Requests the audit log accounts for: its lines plus the `suppressed` counts it reports (the
 * sidecar bounds its audit rate: 20 lines back to back, then 10 per second).
 */
export function auditedRequests(log: readonly LogLine[]): number {
  return log.filter((l) => l['event'] === 'request').reduce((n, l) => n + 1 + (typeof l['suppressed'] === 'number' ? l['suppressed'] : 0), 0);
}

/** The audit lines of a sidecar log: [command, status] in order. */
export function auditOf(log: readonly LogLine[]): [string, number][] {
  return log.filter((l) => l['event'] === 'request').map((l) => [String(l['command']), Number(l['status'])]);
}

/**
 * Console text without terminal control sequences. SeaBIOS and the kernel reset the screen with
 * ESC c (RIS: clear, cursor home), sometimes right after "Booting from ROM.." with no newline, so
 * a reset becomes a line break.
 */
export function stripEscapes(text: string): string {
  return text.replace(/\x1bc/g, '\n').replace(/\x1b(?:\[[0-9;?]*[A-Za-z]|[@-Z\\-_])/g, '');
}

/** The guest's `R <label> [<reply>]` lines from its console. */
export function repliesOf(consoleText: string): Map<string, string> {
  const replies = new Map<string, string>();
  for (const m of stripEscapes(consoleText).matchAll(/^R (\S+) \[(.*)\]$/gm)) replies.set(m[1] ?? '', m[2] ?? '');
  return replies;
}

export function vmDirExists(host: Host, name: string): boolean {
  return existsSync(host.vmDir(name));
}

/**
 * True once the daemon has removed the VM's directory: it checks every second whether QEMU is
 * still there, so this is shortly after QEMU exited. False if it is still there after `ms`.
 */
export async function vmDirRemoved(host: Host, name: string, ms = 15_000): Promise<boolean> {
  return until(() => !vmDirExists(host, name), ms, () => `${host.vmDir(name)} to be removed`).then(() => true, () => false);
}

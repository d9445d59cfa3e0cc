// Launcher overhead: exec → QMP greeting, `hostinfo-qemu -- <args>` vs `qemu-system-x86_64 <args>`.
// The greeting is read on a QMP socket of the user's own (-qmp unix:...) in both cases: the
// launcher's qmp.sock belongs to the sidecar, QMP's one client. Steady state has the cache already
// running (the launcher only probes it); cold runs start with no cache, so the launcher starts one.
// Also: sidecar ready after QMP is up, from the sidecar's log (`time`, epoch ms) against the epoch
// ms at which the bench read the greeting.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, PAUSED_QEMU } from './fleet.js';
import { percentile, type Benchmark, type BenchRow } from './table.js';

const RUNS = 7;
const COLD_RUNS = 2;
const GOAL_ADDED_MS = 150;
const GOAL_READY_MS = 300;
const EXIT_TIMEOUT_MS = 10_000;

/** Polls `path` every millisecond until a connection gets the QMP greeting; returns the epoch ms it arrived. */
async function greeting(path: string, child: ChildProcess): Promise<number> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode}) before the QMP greeting`);
    const got = await new Promise<boolean>((resolve) => {
      const socket = connect({ path });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('"QMP"')) {
          socket.destroy();
          resolve(true);
        }
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (got) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

const median = (values: readonly number[]): number => percentile([...values].sort((a, b) => a - b), 50);

export const launcherBenchmark: Benchmark = {
  name: 'launcher',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'hostinfo-bench-launch-'));
    const runtime = join(dir, 'run');
    const cachePids = new Set<number>();
    const children: ChildProcess[] = [];
    /** The cache the launcher started detached: its pid is in its log (pino's `pid`). */
    const readCachePids = (): void => {
      const log = join(runtime, 'logs', 'cache.log');
      if (!existsSync(log)) return;
      for (const match of readFileSync(log, 'utf8').matchAll(/"pid":(\d+)/g)) cachePids.add(Number(match[1]));
    };
    const killCaches = async (): Promise<void> => {
      readCachePids();
      for (const pid of cachePids) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
      }
      // Let the socket stop answering before the next cold run.
      await new Promise((resolve) => setTimeout(resolve, 200));
    };
    let run = 0;
    /** One start to greeting; with the launcher, also the sidecar's ready times. */
    const once_ = async (wrapped: boolean): Promise<{ ms: number; events: Record<string, number> | undefined }> => {
      run += 1;
      const name = `bench-l${run}`;
      const user = join(dir, `user-${run}.sock`);
      const qemuArgs = [...PAUSED_QEMU, '-name', name, '-qmp', `unix:${user},server=on,wait=off`];
      const started = process.hrtime.bigint();
      const child = wrapped
        ? spawn(process.execPath, [bin('launcher/main.js'), '--config', join(dir, 'hostinfo.toml'), '--runtime-dir', runtime, '--', ...qemuArgs], { stdio: 'ignore' })
        : spawn('qemu-system-x86_64', qemuArgs, { stdio: 'ignore' });
      children.push(child);
      try {
        const greetedAt = await greeting(user, child);
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (!wrapped) return { ms, events: undefined };
        // Wait for the sidecar to have host data, then read when each step happened.
        const logs = join(runtime, 'logs');
        const deadline = Date.now() + EXIT_TIMEOUT_MS;
        for (;;) {
          const file = readdirSync(logs).find((f) => f.startsWith(name) && f.endsWith('.sidecar.log'));
          const text = file === undefined ? '' : readFileSync(join(logs, file), 'utf8');
          if (text.includes('"event":"cache-data"')) {
            const events: Record<string, number> = {};
            for (const line of text.split('\n')) {
              const match = /"time":(\d+).*"event":"([^"]+)"/.exec(line);
              if (match?.[2] !== undefined) events[match[2]] ??= Number(match[1]) - greetedAt;
            }
            return { ms, events };
          }
          if (Date.now() > deadline) throw new Error(`no cache-data from ${name}'s sidecar: ${text.slice(-500)}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      } finally {
        await stop(child);
      }
    };
    try {
      await mkdir(join(dir, 'policies'));
      await writeFile(join(dir, 'policies', 'default.toml'), 'enabled = true\n');
      await writeFile(join(dir, 'hostinfo.toml'), 'enabled = true\npolicy_dir = "policies"\n');
      const cold: number[] = [];
      for (let i = 0; i < COLD_RUNS; i += 1) {
        cold.push((await once_(true)).ms);
        await killCaches();
      }
      // Warm-up (and the cache this run starts stays up for the steady-state runs).
      await once_(false);
      await once_(true);
      const alone: number[] = [];
      const wrapped: number[] = [];
      const ready: Record<string, number>[] = [];
      for (let i = 0; i < RUNS; i += 1) {
        alone.push((await once_(false)).ms);
        const result = await once_(true);
        wrapped.push(result.ms);
        if (result.events !== undefined) ready.push(result.events);
      }
      const added = median(wrapped) - median(alone);
      const coldAdded = median(cold) - median(alone);
      const step = (event: string): number => median(ready.map((r) => r[event] ?? NaN));
      const subscribed = step('cache-subscribed');
      const ms = (value: number): string => `${value.toFixed(0)} ms`;
      return [
        { benchmark: this.name, measure: `QEMU alone, exec → QMP greeting, median of ${RUNS}`, value: ms(median(alone)), goal: '', met: undefined },
        { benchmark: this.name, measure: `hostinfo-qemu, exec → QMP greeting, cache running, median of ${RUNS}`, value: ms(median(wrapped)), goal: '', met: undefined },
        { benchmark: this.name, measure: 'added by hostinfo-qemu (cache running)', value: ms(added), goal: `< ${GOAL_ADDED_MS} ms`, met: added < GOAL_ADDED_MS },
        { benchmark: this.name, measure: `added by hostinfo-qemu, cold (it starts the cache), median of ${COLD_RUNS}`, value: ms(coldAdded), goal: '', met: undefined },
        { benchmark: 'sidecar ready', measure: 'QMP greeting → identity / policy (median)', value: `${ms(step('identity'))} / ${ms(step('policy'))}`, goal: '', met: undefined },
        { benchmark: 'sidecar ready', measure: 'QMP greeting → cache-subscribed (median)', value: ms(subscribed), goal: `< ${GOAL_READY_MS} ms`, met: subscribed < GOAL_READY_MS },
        { benchmark: 'sidecar ready', measure: 'QMP greeting → first host data (median; samples every 1 s)', value: ms(step('cache-data')), goal: '', met: undefined },
      ];
    } finally {
      await Promise.all(children.map(stop));
      await killCaches();
      await rm(dir, { recursive: true, force: true });
    }
  },
};

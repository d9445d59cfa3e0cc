// Where the request path's time goes under the 100-VM load: a CPU profile of a few of the
// daemon's own sidecars (and of the daemon) while all 100 guests ask at once. Not a row of
// `npm run bench`: run it by hand, node dist/bench/fleet-profile.js [VMS] [OUT_DIR] [ROUNDS].
//
// hostinfod spawns sidecars with an empty environment, so no NODE_OPTIONS or --cpu-prof can reach
// them. Instead this fleet's hostinfod runs with HOSTINFO_ALLOW_INSPECTOR=1, which lets SIGUSR1
// open Node's inspector on 127.0.0.1:9229 in it and its sidecars (both ignore the signal
// otherwise); each profiled process gets SIGUSR1 (root, which the bench runs as, may signal the
// sidecar user), is profiled over the inspector protocol, and closes the inspector again, freeing
// the port for the next one. Profiled one at a time, each under its own load run of the same shape.

import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { ALLOW_INSPECTOR_ENV } from '../common/inspector-signal.js';
import { Fleet } from './fleet.js';
import { concurrentRoundTrips } from './fleet-roundtrip.js';
import { poll } from './fleet-site.js';
import { cpuTicks } from '../test/helpers/proc-stats.js';

const VMS = Number(process.argv[2] ?? 100);
const OUT = process.argv[3] ?? '/tmp';
const ROUNDS = Number(process.argv[4] ?? 300);
const SAMPLING_US = 100;
const TOP = 18;

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

function inspectorUrl(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = get('http://127.0.0.1:9229/json/list', (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      response.on('end', () => {
        try {
          resolve((JSON.parse(body) as { webSocketDebuggerUrl?: string }[])[0]?.webSocketDebuggerUrl);
        } catch {
          resolve(undefined);
        }
      });
    });
    request.on('error', () => resolve(undefined));
  });
}

class Inspector {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #pending = new Map<number, (result: unknown) => void>();
  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
      if (message.id !== undefined) this.#pending.get(message.id)?.(message.result ?? message.error);
    });
  }
  static async open(pid: number): Promise<Inspector> {
    process.kill(pid, 'SIGUSR1');
    const url = await poll(`pid ${pid}'s inspector`, () => inspectorUrl(), 10_000);
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024 });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new Inspector(ws);
  }
  call(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }
  /** The inspector closes itself once this session has gone, so 9229 is free for the next process. */
  async close(): Promise<void> {
    await this.call('Runtime.evaluate', { expression: "setTimeout(() => process.getBuiltinModule('node:inspector').close(), 50), 0" });
    this.#ws.close();
    await poll('the inspector to close', async () => ((await inspectorUrl()) === undefined ? true : undefined), 10_000);
  }
}

/** Self time per function (name, file, line), in ms. */
function selfTimes(profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const times = new Map<string, number>();
  profile.samples.forEach((id, index) => {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) return;
    const file = frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^file:\/\//, '');
    const key = `${frame.functionName || '(anonymous)'} ${file}${file === '' ? '' : `:${frame.lineNumber + 1}`}`;
    times.set(key, (times.get(key) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  return times;
}

function report(title: string, times: Map<string, number>): void {
  const idle = times.get('(idle) ') ?? 0;
  const busy = [...times.values()].reduce((a, b) => a + b, 0) - idle;
  process.stdout.write(`\n${title}: ${busy.toFixed(0)} ms busy (idle ${idle.toFixed(0)} ms)\n`);
  const rows = [...times.entries()].filter(([key]) => key !== '(idle) ').sort((a, b) => b[1] - a[1]).slice(0, TOP);
  for (const [key, ms] of rows) process.stdout.write(`  ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${ms.toFixed(1).padStart(7)} ms  ${key}\n`);
}

async function profileDuring(pid: number, name: string, load: () => Promise<unknown>): Promise<Map<string, number>> {
  const inspector = await Inspector.open(pid);
  await inspector.call('Profiler.enable');
  await inspector.call('Profiler.setSamplingInterval', { interval: SAMPLING_US });
  await inspector.call('Profiler.start');
  await load();
  const { profile } = (await inspector.call('Profiler.stop')) as { profile: CpuProfile };
  await inspector.close();
  writeFileSync(join(OUT, `${name}.cpuprofile`), JSON.stringify(profile));
  return selfTimes(profile);
}

/** CPU ms of each kind of process over `during`, per request when there are requests. */
async function cpuSplit(fleet: Fleet, sidecars: readonly number[], load: () => Promise<unknown>): Promise<void> {
  const groups = { sidecars, qemus: fleet.vms.map((vm) => vm.qemu.pid ?? 0), hostinfod: [fleet.daemon.pid], bench: [process.pid] };
  const ticks = (): Record<string, number> => Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + cpuTicks(pid), 0)]));
  for (const [label, run, requests] of [['load', load, VMS * ROUNDS], ['idle, as long', undefined, 0]] as const) {
    const before = ticks();
    const start = Date.now();
    if (run === undefined) await new Promise((resolve) => setTimeout(resolve, lastLoadMs));
    else await run();
    const elapsed = Date.now() - start;
    if (run !== undefined) lastLoadMs = elapsed;
    const after = ticks();
    const parts = Object.keys(groups).map((name) => {
      const ms = ((after[name] ?? 0) - (before[name] ?? 0)) * 10;
      return `${name} ${ms} ms${requests > 0 ? ` (${((1000 * ms) / requests).toFixed(0)} µs/request)` : ''}`;
    });
    process.stdout.write(`CPU over ${elapsed} ms of ${label}: ${parts.join(', ')}\n`);
  }
}
let lastLoadMs = 0;

// hostinfod and its sidecars ignore SIGUSR1 unless told otherwise (common/inspector-signal.ts).
const fleet = await Fleet.start(VMS, { [ALLOW_INSPECTOR_ENV]: '1' });
try {
  const guests = fleet.vms.map((vm) => vm.guest);
  const load = (): Promise<number[]> => concurrentRoundTrips(guests, 'physcpus', /^1\.0 200 \d+$/, ROUNDS);
  await concurrentRoundTrips(guests, 'physcpus', /^1\.0 200 \d+$/, 20);
  const pids = await fleet.sidecarPids();
  await cpuSplit(fleet, pids, load);
  const merged = new Map<string, number>();
  for (const index of [0, Math.floor(VMS / 3), Math.floor((2 * VMS) / 3)]) {
    const pid = pids[index] as number;
    const times = await profileDuring(pid, `sidecar-${index}`, load);
    for (const [key, ms] of times) merged.set(key, (merged.get(key) ?? 0) + ms);
  }
  report(`3 sidecars of ${VMS}, ${ROUNDS} rounds each, self time`, merged);
  report(`hostinfod serving ${VMS}, ${ROUNDS} rounds, self time`, await profileDuring(fleet.daemon.pid, 'hostinfod', load));
  process.stdout.write(`\nprofiles in ${OUT}/sidecar-*.cpuprofile, ${OUT}/hostinfod.cpuprofile\n`);
} finally {
  await fleet.close();
}

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { SIDECAR_RESTART, SidecarSupervisor, type RestartPolicy, type SupervisorOptions } from '../../daemon/sidecar-supervisor.js';
import { withTimeout } from './helpers.js';

const PROGRAM = fileURLToPath(new URL('../../../test/fixtures/programs/exit-with.mjs', import.meta.url));
/** The real policy (five crashes within a minute), with delays short enough for a test. */
const FAST: RestartPolicy = { ...SIDECAR_RESTART, firstDelayMs: 10, maxDelayMs: 40 };

type Teardown = { teardown(fn: () => unknown): void };

interface Fixture {
  readonly sup: SidecarSupervisor;
  pids(): Promise<number[]>;
  /** Resolves once the stand-ins have recorded `count` pids (each records itself once set up). */
  recorded(count: number): Promise<number[]>;
}

async function supervisor(t: Teardown, how: string, options: Partial<SupervisorOptions> = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'hostinfo-sup-'));
  const record = join(dir, 'pids');
  const launch = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [PROGRAM, record, how], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', () => {});
    return child;
  };
  const sup = new SidecarSupervisor({ launch, policy: FAST, ...options });
  t.teardown(async () => {
    await sup.stop(100);
    await rm(dir, { recursive: true, force: true });
  });
  const pids = async (): Promise<number[]> => (await readFile(record, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const recorded = (count: number): Promise<number[]> => withTimeout((async () => {
    for (;;) {
      const seen = await pids();
      if (seen.length >= count) return seen;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })(), `${count} recorded pids`);
  return { sup, pids, recorded };
}

const exitedOnce = (sup: SidecarSupervisor): Promise<[string, number | undefined]> => withTimeout(once(sup, 'exited') as Promise<[string, number | undefined]>, 'exited');

t.test('a crashing sidecar is restarted with growing delays, and given up on at the fifth crash', async (t) => {
  t.equal(SIDECAR_RESTART.maxCrashes, 5, 'five crashes, as documented');
  const { sup, pids } = await supervisor(t, '1');
  const delays: (number | undefined)[] = [];
  sup.on('exited', (_how, restartInMs) => delays.push(restartInMs));
  const gaveUp = withTimeout(once(sup, 'gave-up') as Promise<[number]>, 'gave-up');
  sup.start();
  t.same(await gaveUp, [5], 'the fifth crash inside the window gives up');
  t.same(delays, [10, 20, 40, 40, undefined], 'backoff doubles up to maxDelayMs, then no restart');
  t.equal((await pids()).length, 5, 'exactly five processes ran, not six');
  t.equal(sup.starts, 5);
  t.equal(sup.pid, undefined);
});

t.test('exit status 0 is the sidecar\'s own decision: no restart', async (t) => {
  const { sup, pids } = await supervisor(t, '0');
  const exited = exitedOnce(sup);
  sup.start();
  t.same(await exited, ['exit status 0', undefined]);
  t.equal((await pids()).length, 1);
});

t.test('kill -9 of a running sidecar: restarted', async (t) => {
  const { sup, recorded } = await supervisor(t, 'wait');
  const started: number[] = [];
  sup.on('started', (pid) => started.push(pid));
  sup.start();
  const [first] = await recorded(1);
  t.equal(sup.pid, first);
  const restarted = exitedOnce(sup);
  process.kill(first!, 'SIGKILL');
  t.same(await restarted, ['signal SIGKILL', 10]);
  const [, second] = await recorded(2);
  t.not(second, first);
  t.same(started, [first, second]);
  t.equal(sup.starts, 2);
});

t.test('crashes spread wider than the window never add up to giving up', async (t) => {
  let now = 0;
  // Every clock reading is 600 ms later: two crashes are 1.2 s apart, wider than the 1 s window.
  const { sup } = await supervisor(t, '1', { policy: { ...FAST, maxCrashes: 2, windowMs: 1_000 }, now: () => (now += 600) });
  let gaveUp = false;
  sup.on('gave-up', () => { gaveUp = true; });
  const sixExits = withTimeout(new Promise<void>((resolve) => {
    let exits = 0;
    sup.on('exited', () => { if ((exits += 1) === 6) resolve(); });
  }), 'six exits');
  sup.start();
  await sixExits;
  t.notOk(gaveUp, 'six crashes, each alone in its window');
});

t.test('a sidecar that ran for a while starts the backoff over', async (t) => {
  let clock = 0;
  const { sup } = await supervisor(t, '1', { now: () => clock });
  // The third run lasts 20 s by the injected clock.
  sup.on('started', () => { if (sup.starts === 3) clock += 20_000; });
  const delays: (number | undefined)[] = [];
  sup.on('exited', (_how, restartInMs) => delays.push(restartInMs));
  const gaveUp = withTimeout(once(sup, 'gave-up'), 'gave-up');
  sup.start();
  await gaveUp;
  t.same(delays, [10, 20, 10, 20, undefined]);
});

t.test('stop() ends a running sidecar and prevents restarts', async (t) => {
  const { sup, pids, recorded } = await supervisor(t, 'wait');
  sup.start();
  await recorded(1);
  const exited = exitedOnce(sup);
  await sup.stop();
  t.same(await exited, ['exit status 0', undefined], 'SIGTERM, handled');
  sup.start();
  t.equal(sup.starts, 1, 'start() after stop() does nothing');
  t.equal((await pids()).length, 1);
});

t.test('stop() kills a sidecar that ignores SIGTERM once the grace is over', async (t) => {
  const { sup, recorded } = await supervisor(t, 'ignore-term');
  sup.start();
  await recorded(1);
  const exited = exitedOnce(sup);
  await sup.stop(50);
  t.same(await exited, ['signal SIGKILL', undefined]);
});

t.test('a launch that fails counts as a crash', async (t) => {
  let launches = 0;
  const sup = new SidecarSupervisor({ policy: FAST, launch: () => { launches += 1; return Promise.reject(new Error('QEMU is gone before it listened')); } });
  t.teardown(() => sup.stop());
  const how: string[] = [];
  sup.on('exited', (reason) => how.push(reason));
  const gaveUp = withTimeout(once(sup, 'gave-up') as Promise<[number]>, 'gave-up');
  sup.start();
  t.same(await gaveUp, [5]);
  t.equal(launches, 5);
  t.equal(sup.starts, 0, 'nothing ever started');
  t.match(how[0], /^could not be started: QEMU is gone/);
});

t.test('a spawn that fails (no pid) counts as a crash', async (t) => {
  const sup = new SidecarSupervisor({
    policy: { ...FAST, maxCrashes: 1 },
    launch: async () => {
      const child = spawn('/nonexistent/hostinfo-sidecar', [], { stdio: 'ignore' });
      child.on('error', () => {});
      return child;
    },
  });
  t.teardown(() => sup.stop());
  const exited = exitedOnce(sup);
  sup.start();
  t.same(await exited, ['could not be started', undefined]);
});

t.test('a launch that completes after stop() is killed at once', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let child: ChildProcess | undefined;
  const sup = new SidecarSupervisor({
    policy: FAST,
    launch: async () => {
      await gate;
      child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
      return child;
    },
  });
  let started = false;
  sup.on('started', () => { started = true; });
  sup.start();
  await sup.stop();
  release();
  await withTimeout((async () => {
    while (child === undefined) await new Promise((resolve) => setImmediate(resolve));
  })(), 'the launch to complete');
  const late = child!;
  const exit = late.exitCode !== null || late.signalCode !== null ? [late.exitCode, late.signalCode] : await withTimeout(once(late, 'exit'), 'the late child to die');
  t.same(exit, [null, 'SIGKILL']);
  t.notOk(started);
});

import { once } from 'node:events';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { SidecarSupervisor, type RestartPolicy } from '../../launcher/sidecar-supervisor.js';

const PROGRAM = fileURLToPath(new URL('../../../test/fixtures/programs/exit-with.mjs', import.meta.url));
const FAST: RestartPolicy = { firstDelayMs: 10, maxDelayMs: 40, maxCrashes: 3, windowMs: 60_000 };

async function supervisor(how: string, policy = FAST): Promise<{ sup: SidecarSupervisor; pids: () => Promise<number[]> }> {
  const record = join(await mkdtemp(join(tmpdir(), 'hostinfo-sup-')), 'pids');
  const sup = new SidecarSupervisor({ command: process.execPath, args: [PROGRAM, record, how], stdio: ['ignore', 'ignore', 'inherit'], env: process.env, policy });
  const pids = async (): Promise<number[]> => (await readFile(record, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  return { sup, pids };
}

t.test('a crashing sidecar is restarted with growing delays, then given up on and reported', async (t) => {
  const { sup, pids } = await supervisor('1');
  const delays: (number | undefined)[] = [];
  sup.on('exited', (_how, restartInMs) => delays.push(restartInMs));
  const gaveUp = once(sup, 'gave-up') as Promise<[number]>;
  sup.start();
  t.same(await gaveUp, [4], 'the fourth crash inside the window exceeds maxCrashes 3');
  t.same(delays, [10, 20, 40, undefined], 'backoff doubles up to maxDelayMs, then no restart');
  t.equal((await pids()).length, 4, 'four processes ran');
  await sup.stop();
});

t.test('exit status 0 is the sidecar\'s own decision: no restart', async (t) => {
  const { sup, pids } = await supervisor('0');
  const exited = once(sup, 'exited') as Promise<[string, number | undefined]>;
  sup.start();
  t.same(await exited, ['exit status 0', undefined]);
  t.equal((await pids()).length, 1);
});

/** Resolves once the fixture has recorded `count` pids (each records itself once it is set up). */
async function recorded(pids: () => Promise<number[]>, count: number): Promise<number[]> {
  for (;;) {
    const seen = await pids();
    if (seen.length >= count) return seen;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

t.test('kill -9 of a running sidecar: restarted', async (t) => {
  const { sup, pids } = await supervisor('wait');
  sup.start();
  const [first] = await recorded(pids, 1);
  const restarted = once(sup, 'exited') as Promise<[string, number | undefined]>;
  process.kill(first!, 'SIGKILL');
  t.same(await restarted, ['signal SIGKILL', 10]);
  const [, second] = await recorded(pids, 2);
  t.not(second, first);
  await sup.stop();
});

t.test('crashes spread wider than the window never add up to giving up', async (t) => {
  let now = 0;
  const record = join(await mkdtemp(join(tmpdir(), 'hostinfo-sup-')), 'pids');
  // Every clock reading is 600 ms later: two crashes are 1.2 s apart, wider than the 1 s window.
  const sup = new SidecarSupervisor({
    command: process.execPath, args: [PROGRAM, record, '1'], stdio: ['ignore', 'ignore', 'inherit'], env: process.env,
    policy: { ...FAST, maxCrashes: 1, windowMs: 1_000 }, now: () => (now += 600),
  });
  let gaveUp = false;
  sup.on('gave-up', () => { gaveUp = true; });
  const fiveExits = new Promise<void>((resolve) => {
    let exits = 0;
    sup.on('exited', () => { if ((exits += 1) === 5) resolve(); });
  });
  sup.start();
  await fiveExits;
  t.notOk(gaveUp, 'five crashes, each alone in its window');
  await sup.stop();
});

t.test('stop() ends a running sidecar and prevents restarts', async (t) => {
  const { sup, pids } = await supervisor('wait');
  sup.start();
  await recorded(pids, 1);
  const exited = once(sup, 'exited') as Promise<[string, number | undefined]>;
  await sup.stop();
  t.same(await exited, ['exit status 0', undefined], 'SIGTERM, handled');
  t.equal((await pids()).length, 1);
});

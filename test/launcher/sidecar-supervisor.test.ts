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

t.test('kill -9 of a running sidecar: restarted', async (t) => {
  const { sup, pids } = await supervisor('wait');
  const started: number[] = [];
  sup.on('started', (pid) => started.push(pid));
  sup.start();
  await once(sup, 'started');
  const restarted = once(sup, 'started');
  process.kill(started[0]!, 'SIGKILL');
  await restarted;
  t.equal(started.length, 2);
  t.not(started[0], started[1]);
  await sup.stop();
  t.same(await pids(), started);
});

t.test('crashes older than the window are forgiven', async (t) => {
  let now = 0;
  const record = join(await mkdtemp(join(tmpdir(), 'hostinfo-sup-')), 'pids');
  const sup = new SidecarSupervisor({
    command: process.execPath, args: [PROGRAM, record, '1'], stdio: ['ignore', 'ignore', 'inherit'], env: process.env,
    policy: { ...FAST, maxCrashes: 1, windowMs: 1_000 }, now: () => (now += 600),
  });
  let exits = 0;
  sup.on('exited', () => { exits += 1; });
  const gaveUp = once(sup, 'gave-up');
  sup.start();
  await gaveUp;
  // Crash instants 600, 1200 (+ 600 from start() each): consecutive crashes 1.2 s apart never put
  // two inside one 1 s window, so it runs until the backoff makes ... the clock here advances per
  // call; what matters is that it did not give up at the second crash.
  t.ok(exits > 2, `${exits} exits before giving up`);
  await sup.stop();
});

t.test('stop() ends a running sidecar and prevents restarts', async (t) => {
  const { sup, pids } = await supervisor('wait');
  sup.start();
  await once(sup, 'started');
  const exited = once(sup, 'exited') as Promise<[string, number | undefined]>;
  await sup.stop();
  t.same(await exited, ['exit status 0', undefined], 'SIGTERM, handled');
  t.equal((await pids()).length, 1);
});

import t from 'tap';
import { MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS, USAGE, parseFlags } from '../../daemon/cli.js';

const NONE = { configPath: undefined, runtimeDir: undefined, intervalSeconds: undefined, logFile: false };

t.test('flags', async (t) => {
  t.same(parseFlags([]), { kind: 'run', flags: NONE });
  t.same(parseFlags(['--config', 'a.toml', '--runtime-dir=/r', '--interval', '0.5', '--foreground', '--log-file']), {
    kind: 'run', flags: { configPath: 'a.toml', runtimeDir: '/r', intervalSeconds: 0.5, logFile: true },
  });
  t.same(parseFlags(['--foreground']), { kind: 'run', flags: NONE }, '--foreground changes nothing');
  t.same(parseFlags(['--interval', String(MIN_INTERVAL_SECONDS)]), { kind: 'run', flags: { ...NONE, intervalSeconds: MIN_INTERVAL_SECONDS } });
  t.same(parseFlags(['--interval', String(MAX_INTERVAL_SECONDS)]), { kind: 'run', flags: { ...NONE, intervalSeconds: MAX_INTERVAL_SECONDS } });
});

t.test('--help and --version win over everything else', async (t) => {
  t.same(parseFlags(['--interval', '2', '--help']), { kind: 'help' });
  t.same(parseFlags(['-h']), { kind: 'help' });
  t.same(parseFlags(['--version', '--config', 'x']), { kind: 'version' });
  t.same(parseFlags(['--version', '--help']), { kind: 'help' });
  for (const flag of ['--config', '--runtime-dir', '--interval', '--log-file', '--foreground', '--help', '--version']) t.match(USAGE, flag);
});

t.test('bad flags are errors that say what is wrong', async (t) => {
  const message = (argv: string[]): string => {
    const parsed = parseFlags(argv);
    return parsed.kind === 'error' ? parsed.message : 'no error';
  };
  t.match(message(['--bogus']), /Unknown option '--bogus'/);
  t.match(message(['--socket', '/x']), /Unknown option '--socket'/, 'the old --socket flag is gone');
  t.match(message(['--interval']), /--interval <value>' argument missing/);
  t.match(message(['--interval', 'fast']), /got "fast"/);
  t.match(message(['--interval', '0']), /between 0.01 and 3600/);
  t.match(message(['--interval', '0x10']), /got "0x10"/, 'hexadecimal is not decimal seconds');
  t.match(message(['--interval', '1e1']), /got "1e1"/);
  t.match(message(['--interval', '3601']), /between 0.01 and 3600/);
  t.match(message(['--interval', '']), /--interval needs seconds/);
  t.match(message(['--interval', ' ']), /--interval needs seconds/);
  t.match(message(['--interval', 'NaN']), /--interval needs seconds/);
  t.match(message(['--config']), /--config <value>' argument missing/);
  t.match(message(['--config=']), /--config needs a path/);
  t.match(message(['--runtime-dir=']), /--runtime-dir needs a path/);
  t.match(message(['--config', '--runtime-dir', 'x']), /'--config' argument is ambiguous/);
  t.match(message(['--foreground=no']), /does not take an argument/);
  t.match(message(['--log-file=yes']), /does not take an argument/);
  t.match(message(['extra']), /Unexpected argument 'extra'/);
});

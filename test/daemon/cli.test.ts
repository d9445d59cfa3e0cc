import t from 'tap';
import { parseFlags } from '../../daemon/cli.js';

t.test('flags', async (t) => {
  t.same(parseFlags([]), { kind: 'run', flags: {} });
  t.same(parseFlags(['--config', 'a.toml', '--socket=/x/c.sock', '--interval', '0.5', '--foreground']), {
    kind: 'run', flags: { configPath: 'a.toml', socketPath: '/x/c.sock', intervalSeconds: 0.5 },
  });
  t.same(parseFlags(['--interval', '2', '--help']), { kind: 'help' });
});

t.test('bad flags are errors that say what is wrong', async (t) => {
  const message = (argv: string[]): string => {
    const parsed = parseFlags(argv);
    return parsed.kind === 'error' ? parsed.message : 'no error';
  };
  t.match(message(['--bogus']), /unknown argument "--bogus"/);
  t.match(message(['--interval']), /--interval needs seconds/);
  t.match(message(['--interval', 'fast']), /got "fast"/);
  t.match(message(['--interval', '0']), /between 0.01 and 3600/);
  t.match(message(['--interval', '']), /--interval needs/);
  t.match(message(['--socket']), /--socket needs a path/);
  t.match(message(['--config', '--socket', 'x']), /--config needs a path/);
  t.match(message(['--foreground=no']), /takes no value/);
  t.match(message(['extra']), /unknown argument/);
});

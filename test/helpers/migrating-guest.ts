// The guest of both live-migration tests (test/e2e/migration.test.ts under hostinfo-qemu,
// test/libvirt/migration.test.ts under libvirt), how its consoles are read, and the checks of the
// switch-over they share. The guest keeps one port open and asks `physcpus` every 0.5 s, and
// `vmsession` beside each, with a read timeout so that a reply the switch-over swallowed cannot
// hang it; once vmsession changed it asks ASKS_AFTER_MOVE more times, prints the last vmsession,
// and then powers off or stays up until the test ends it.

import type { Test } from 'tap';
import { stripEscapes } from '../e2e/harness.js';

/** Requests the guest makes after it saw vmsession change, before it stops asking. */
export const ASKS_AFTER_MOVE = 6;
const ASK_TIMEOUT_S = 3;

export function migratingGuestScript(transport: 'isa-serial' | 'virtio-serial', end: 'power-off' | 'stay-up'): string {
  return [
    '#!/bin/sh',
    '. /lib/hostinfo.sh',
    `port=$(hostinfo_port ${transport}) || exit 1`,
    'exec 3<>"$port"',
    // read -t, not timeout + head: busybox's timeout leaves a watchdog holding the port (README).
    `ask() { echo "$1" >&3; r=; read -t ${ASK_TIMEOUT_S} -r r <&3; echo "$r"; }`,
    'first=$(ask vmsession); echo "S first [$first]"',
    'n=0; after=0; last=$first',
    `while [ $n -lt 400 ] && [ $after -lt ${ASKS_AFTER_MOVE} ]; do`,
    '  n=$((n+1)); echo "R $n [$(ask physcpus)]"',
    '  s=$(ask vmsession)',
    '  case $s in "1.0 200 "*) last=$s ;; esac',
    '  [ "$last" != "$first" ] && after=$((after+1))',
    '  sleep 0.5',
    'done',
    'echo "S last [$last]"',
    // Staying up keeps "the VM ended" from being the guest's own doing: the test ends it.
    ...(end === 'stay-up' ? ['while :; do sleep 60; done'] : []),
    '',
  ].join('\n');
}

/** The guest's numbered `R n [reply]` lines from one console (a file console ends lines in CR LF). */
export function numberedReplies(consoleText: string): Map<number, string> {
  return new Map([...stripEscapes(consoleText).matchAll(/^R (\d+) \[(.*?)\]\r?$/gm)].map((m) => [Number(m[1]), m[2] ?? '']));
}

/** The vmsession reply the guest printed first (on the source) or last (on the destination). */
export function sessionReply(consoleText: string, which: 'first' | 'last'): string | undefined {
  return new RegExp(`^S ${which} \\[(.*?)\\]\\r?$`, 'm').exec(stripEscapes(consoleText))?.[1];
}

/**
 * The switch-over as the guest saw it, from the replies it printed on the source's console and on
 * the destination's: it asked on both, its loop went on with no request numbered twice or skipped,
 * at most the one request in flight went unanswered, every answer was a 200. Returns the numbers
 * of the unanswered requests.
 */
export function checkSwitchOver(t: Test, before: ReadonlyMap<number, string>, after: ReadonlyMap<number, string>): number[] {
  const all = [...before, ...after].sort(([a], [b]) => a - b);
  const lost = all.filter(([, reply]) => reply === '').map(([n]) => n);
  t.ok(before.size >= 3 && after.size >= ASKS_AFTER_MOVE, `the guest asked on both hosts (${before.size} answers printed on the source's console, ${after.size} on the destination's)`);
  t.same(all.map(([n]) => n), all.map((_, i) => i + 1), 'the guest\'s loop went on across the switch-over: every request numbered once');
  t.ok(lost.length <= 1, `at most the request in flight at the switch-over went unanswered (${lost.join(', ') || 'none'})`);
  const not200 = all.filter(([, reply]) => reply !== '' && !/^1\.0 200 \d+$/.test(reply));
  t.same(not200, [], 'every answer is a 200', { replies: all });
  const firstAfter = [...after.keys()][0] ?? 0;
  t.ok([...after].filter(([n]) => n > firstAfter).every(([, reply]) => reply !== ''), 'every request the guest made on the destination after its first there was answered');
  return lost;
}

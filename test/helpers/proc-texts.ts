// A ProcSource over a fixed set of texts, for tests and recorded fixtures.

import type { ProcSource } from '../../daemon/collectors/proc-reader.js';

export class ProcTexts implements ProcSource {
  readonly #texts: ReadonlyMap<string, string>;
  constructor(texts: Readonly<Record<string, string>>) {
    this.#texts = new Map(Object.entries(texts));
  }
  read(name: string): string | undefined {
    return this.#texts.get(name);
  }
}

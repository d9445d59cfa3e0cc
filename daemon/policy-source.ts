// Keeps the VM's access decision current without restarting anything: reloaded on demand (SIGHUP)
// and whenever something changes in the policy directory (edits, atomic renames, a new
// <name>.toml appearing). Any failure while loading fails closed.

import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { decideAccess, type Access } from '../policies/access.js';
import type { HostConfig } from '../policies/host-config.js';
import { findVmPolicy, type VmIdentity } from '../policies/policy-lookup.js';

/** Editors write a file in several steps; one reload after the burst of events is enough. */
export const POLICY_SETTLE_MS = 50;

export interface PolicySourceEvents {
  /** The decision differs from the previous one. */
  change: [access: Access];
  /** The directory cannot be watched (e.g. it does not exist yet): retried at the next reload. */
  unwatched: [reason: string];
}

export class PolicySource extends EventEmitter<PolicySourceEvents> {
  readonly #identity: VmIdentity;
  readonly #loadConfig: () => Promise<HostConfig>;
  #access: Access = { served: false, reason: 'policy not loaded yet' };
  #watcher: FSWatcher | undefined;
  #watchedDir: string | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #loading: Promise<Access> | undefined;
  #again = false;
  #closed = false;

  constructor(identity: VmIdentity, loadConfig: () => Promise<HostConfig>) {
    super();
    this.#identity = identity;
    this.#loadConfig = loadConfig;
  }

  get access(): Access {
    return this.#access;
  }

  /**
   * Loads config and policy now. Calls that arrive while a load runs are folded into one more
   * load after it, so the last change on disk always wins.
   */
  reload(): Promise<Access> {
    if (this.#loading !== undefined) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = this.#load().finally(() => {
      this.#loading = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.reload();
      }
    });
    return this.#loading;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#settleTimer);
    this.#watcher?.close();
  }

  async #load(): Promise<Access> {
    let access: Access;
    let policyDir: string | undefined;
    try {
      const config = await this.#loadConfig();
      policyDir = config.policyDir;
      access = decideAccess(config, await findVmPolicy(config.policyDir, this.#identity));
    } catch (error) {
      access = { served: false, reason: `cannot load configuration, failing closed: ${(error as Error).message}` };
    }
    if (this.#closed) return access;
    if (policyDir !== undefined) this.#watch(policyDir);
    const changed = JSON.stringify(access) !== JSON.stringify(this.#access);
    this.#access = access;
    if (changed) this.emit('change', access);
    return access;
  }

  #watch(dir: string): void {
    if (this.#watchedDir === dir) return;
    this.#watcher?.close();
    this.#watchedDir = undefined;
    try {
      this.#watcher = watch(dir, { persistent: false }, () => {
        clearTimeout(this.#settleTimer);
        this.#settleTimer = setTimeout(() => void this.reload(), POLICY_SETTLE_MS);
      });
      this.#watcher.on('error', (error) => this.emit('unwatched', error.message));
      this.#watchedDir = dir;
    } catch (error) {
      this.#watcher = undefined;
      this.emit('unwatched', `${dir}: ${(error as Error).message}`);
    }
  }
}

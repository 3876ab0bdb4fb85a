/**
 * Named secrets (static_resources.secrets, or SDS pushes via set/remove) with watchers,
 * and file-backed material (DataSource.filename) re-read when the file changes.
 * Files are watched through their directory, because Kubernetes and most rotation tools
 * replace files by rename (or swap a `..data` symlink), which a per-file watch misses;
 * a slow poll backs the watch up on filesystems without inotify.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Diagnostics, TypedExtension } from '../../config/src/index.js';
import { decodeSecretExtension } from './decode.js';
import { defaultLogger, type TlsLogger } from './stats.js';
import type { DataSource, SecretSpec } from './types.js';

export type Unsubscribe = () => void;

export interface SecretStoreOptions {
  /** Backup poll of watched files (default 5000 ms; 0 = watch events only). */
  readonly pollIntervalMs?: number;
  /** Coalesces bursts of file events (a rotation writes cert and key separately). Default 100 ms. */
  readonly debounceMs?: number;
  readonly log?: TlsLogger;
}

interface WatchedFile {
  readonly path: string;
  digest: string | undefined;
  readonly listeners: Set<() => void>;
}

export class SecretStore {
  private readonly secrets = new Map<string, SecretSpec>();
  private readonly watchers = new Map<string, Set<(s: SecretSpec | undefined) => void>>();
  private readonly files = new Map<string, WatchedFile>();
  private readonly dirWatchers = new Map<string, { w: FSWatcher | undefined; refs: number }>();
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private readonly pollIntervalMs: number;
  private readonly debounceMs: number;
  private readonly log: TlsLogger;
  private closed = false;

  constructor(o: SecretStoreOptions = {}) {
    this.pollIntervalMs = o.pollIntervalMs ?? 5000;
    this.debounceMs = o.debounceMs ?? 100;
    this.log = o.log ?? defaultLogger;
  }

  // ------------------------------------------------------------ named secrets

  set(name: string, secret: SecretSpec): void {
    if (secret.name !== name) secret = { ...secret, name };
    this.secrets.set(name, secret);
    this.notify(name, secret);
  }

  remove(name: string): void {
    if (!this.secrets.delete(name)) return;
    this.notify(name, undefined);
  }

  get(name: string): SecretSpec | undefined {
    return this.secrets.get(name);
  }

  names(): string[] {
    return [...this.secrets.keys()];
  }

  /** Names someone is waiting for: what the xDS client should subscribe to over SDS. */
  watchedNames(): string[] {
    return [...this.watchers.keys()];
  }

  /** Called with the new secret (or undefined on removal) on every change of `name`. */
  watch(name: string, cb: (s: SecretSpec | undefined) => void): Unsubscribe {
    let set = this.watchers.get(name);
    if (!set) this.watchers.set(name, (set = new Set()));
    set.add(cb);
    return () => {
      set!.delete(cb);
      if (set!.size === 0) this.watchers.delete(name);
    };
  }

  /** Loads bootstrap `static_resources.secrets`; bad entries are reported and skipped. */
  loadStatic(secrets: readonly TypedExtension[], diag: Diagnostics, path = 'static_resources.secrets'): void {
    secrets.forEach((ext, i) => {
      const s = decodeSecretExtension(ext, diag, `${path}[${i}]`);
      if (s) this.set(s.name, s);
    });
  }

  private notify(name: string, s: SecretSpec | undefined): void {
    for (const cb of [...(this.watchers.get(name) ?? [])]) {
      try {
        cb(s);
      } catch (e) {
        this.log('error', `secret "${name}" watcher failed: ${(e as Error).message}`);
      }
    }
  }

  // ------------------------------------------------------------ data sources

  /** Current bytes of a DataSource. Throws (with the file name) if unreadable - callers keep their last good material. */
  readData(ds: DataSource): Buffer {
    switch (ds.kind) {
      case 'inline': return ds.bytes;
      case 'env': {
        const v = process.env[ds.name];
        if (v === undefined) throw new Error(`environment variable ${ds.name} is not set`);
        return Buffer.from(v, 'utf8');
      }
      default: return readFileSync(ds.path);
    }
  }

  /** Calls `cb` whenever a file-backed DataSource changes content. No-op for inline sources. */
  watchData(ds: DataSource, cb: () => void): Unsubscribe {
    if (ds.kind !== 'file' || this.closed) return () => {};
    const path = resolve(ds.path);
    let f = this.files.get(path);
    if (!f) {
      f = { path, digest: digestOf(path), listeners: new Set() };
      this.files.set(path, f);
      this.retainDir(dirname(path));
      this.ensurePoll();
    }
    const file = f;
    file.listeners.add(cb);
    return () => {
      file.listeners.delete(cb);
      if (file.listeners.size === 0 && this.files.get(path) === file) {
        this.files.delete(path);
        this.releaseDir(dirname(path));
        if (this.files.size === 0) this.stopPoll();
      }
    };
  }

  /** Re-reads every watched file now and notifies the changed ones (also what the watch/poll do). */
  recheckFiles(): void {
    for (const f of [...this.files.values()]) {
      const d = digestOf(f.path);
      // A file briefly missing mid-rotation is not a change; wait for the new one.
      if (d === undefined || d === f.digest) continue;
      f.digest = d;
      for (const cb of [...f.listeners]) {
        try {
          cb();
        } catch (e) {
          this.log('error', `file watcher for ${f.path} failed: ${(e as Error).message}`);
        }
      }
    }
  }

  private scheduleRecheck(): void {
    if (this.debounceTimer || this.closed) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.recheckFiles();
    }, this.debounceMs);
    this.debounceTimer.unref();
  }

  private retainDir(dir: string): void {
    const e = this.dirWatchers.get(dir);
    if (e) { e.refs++; return; }
    let w: FSWatcher | undefined;
    try {
      w = watch(dir, { persistent: false }, () => this.scheduleRecheck());
      w.on('error', () => { /* directory gone: the poll keeps checking */ });
    } catch {
      w = undefined;
    }
    this.dirWatchers.set(dir, { w, refs: 1 });
  }

  private releaseDir(dir: string): void {
    const e = this.dirWatchers.get(dir);
    if (!e) return;
    if (--e.refs > 0) return;
    e.w?.close();
    this.dirWatchers.delete(dir);
  }

  private ensurePoll(): void {
    if (this.pollTimer || this.pollIntervalMs <= 0) return;
    this.pollTimer = setInterval(() => this.recheckFiles(), this.pollIntervalMs);
    this.pollTimer.unref();
  }

  private stopPoll(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  close(): void {
    this.closed = true;
    this.stopPoll();
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    for (const e of this.dirWatchers.values()) e.w?.close();
    this.dirWatchers.clear();
    this.files.clear();
    this.watchers.clear();
  }
}

function digestOf(path: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('base64');
  } catch {
    return undefined;
  }
}

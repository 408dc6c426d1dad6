/**
 * A simulated durable store with the failure mode that matters: writes sit in a buffer until
 * flushed (fsync), and a crash loses whatever was not flushed. A batch written with
 * `commit` is flushed atomically with everything before it (one transaction). Values are
 * strings (what a real store would serialize), so a restore can never share objects with
 * the state that crashed.
 */
export class SimDisk {
  private durable = new Map<string, string>();
  private buffered = new Map<string, string | null>();
  flushes = 0;
  lostOnCrash = 0;

  /** A buffered write: visible to reads, lost on crash unless flushed. */
  write(key: string, value: string | null): void {
    this.buffered.set(key, value);
  }

  /** Writes and flushes in one step: all of `writes` survive a crash, or none were made. */
  commit(writes: Record<string, string | null>): void {
    for (const [k, v] of Object.entries(writes)) this.buffered.set(k, v);
    this.flush();
  }

  flush(): void {
    for (const [k, v] of this.buffered) {
      if (v === null) this.durable.delete(k);
      else this.durable.set(k, v);
    }
    this.buffered.clear();
    this.flushes++;
  }

  get(key: string): string | undefined {
    if (this.buffered.has(key)) return this.buffered.get(key) ?? undefined;
    return this.durable.get(key);
  }

  /** Durable value only (what a restart would see). */
  getDurable(key: string): string | undefined {
    return this.durable.get(key);
  }

  /** Keys with the prefix, in sorted order (what survives + what is buffered). */
  keys(prefix: string): string[] {
    const all = new Set<string>();
    for (const k of this.durable.keys()) if (k.startsWith(prefix)) all.add(k);
    for (const [k, v] of this.buffered) {
      if (!k.startsWith(prefix)) continue;
      if (v === null) all.delete(k);
      else all.add(k);
    }
    return [...all].sort();
  }

  get unflushed(): number {
    return this.buffered.size;
  }

  /** The power goes out: unflushed writes are gone. */
  crash(): number {
    const lost = this.buffered.size;
    this.lostOnCrash += lost;
    this.buffered.clear();
    return lost;
  }
}

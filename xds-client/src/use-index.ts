/**
 * A two-way "who uses what" index (users -> the names they depend on, and back), so an
 * update to one resource finds its users without scanning every listener or cluster.
 * `generation` moves when the set of used names changes, so a subscriber can tell
 * cheaply whether the dependent subscription needs recomputing.
 */
const NONE: ReadonlySet<string> = new Set();

export class UseIndex {
  private readonly byDep = new Map<string, Set<string>>();
  private readonly byUser = new Map<string, readonly string[]>();
  generation = 0;

  /** Replaces what `user` depends on ([] removes the user). */
  set(user: string, deps: readonly string[]): void {
    const old = this.byUser.get(user) ?? [];
    if (old.length === deps.length && old.every((d, i) => d === deps[i])) return;
    for (const d of old) {
      if (deps.includes(d)) continue;
      const users = this.byDep.get(d)!;
      users.delete(user);
      if (users.size === 0) {
        this.byDep.delete(d);
        this.generation++;
      }
    }
    for (const d of deps) {
      let users = this.byDep.get(d);
      if (users === undefined) {
        this.byDep.set(d, (users = new Set()));
        this.generation++;
      }
      users.add(user);
    }
    if (deps.length === 0) this.byUser.delete(user);
    else this.byUser.set(user, deps);
  }

  /** The users of `dep` (a snapshot: callers may update the index while iterating). */
  users(dep: string): string[] {
    return [...(this.byDep.get(dep) ?? NONE)];
  }

  has(dep: string): boolean {
    return this.byDep.has(dep);
  }

  deps(): IterableIterator<string> {
    return this.byDep.keys();
  }
}

/**
 * A two-way "who uses what" index (users -> the names they depend on, and back), so an
 * update to one resource finds its users without scanning every listener or cluster.
 * `generation` moves when the set of used names changes, so a subscriber can tell
 * cheaply whether the dependent subscription needs recomputing.
 *
 * Most names have one user and most users one name (an EDS cluster and its load
 * assignment), so a lone user or name is held as the string itself, and a Set or an
 * array is made only for a second one: ~200 bytes less per entry, thousands of clusters.
 */
type Users = string | Set<string>;
type Deps = string | readonly string[];

export class UseIndex {
  private readonly byDep = new Map<string, Users>();
  private readonly byUser = new Map<string, Deps>();
  generation = 0;

  /** Replaces what `user` depends on ([] removes the user). */
  set(user: string, deps: readonly string[]): void {
    const held = this.byUser.get(user);
    const old: readonly string[] = held === undefined ? [] : typeof held === 'string' ? [held] : held;
    if (old.length === deps.length && old.every((d, i) => d === deps[i])) return;
    for (const d of old) {
      if (deps.includes(d)) continue;
      const users = this.byDep.get(d)!;
      if (typeof users === 'string' || (users.delete(user) && users.size === 0)) {
        this.byDep.delete(d);
        this.generation++;
      } else if (users.size === 1) {
        for (const u of users) this.byDep.set(d, u);
      }
    }
    for (const d of deps) {
      const users = this.byDep.get(d);
      if (users === undefined) {
        this.byDep.set(d, user);
        this.generation++;
      } else if (typeof users === 'string') {
        if (users !== user) this.byDep.set(d, new Set([users, user]));
      } else users.add(user);
    }
    if (deps.length === 0) this.byUser.delete(user);
    else this.byUser.set(user, deps.length === 1 ? deps[0]! : deps);
  }

  /** The users of `dep` (a snapshot: callers may update the index while iterating). */
  users(dep: string): string[] {
    const users = this.byDep.get(dep);
    return users === undefined ? [] : typeof users === 'string' ? [users] : [...users];
  }

  has(dep: string): boolean {
    return this.byDep.has(dep);
  }

  deps(): IterableIterator<string> {
    return this.byDep.keys();
  }
}

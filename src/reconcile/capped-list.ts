/**
 * The first `cap` items added, and a count of the rest: what a pass lists (skips, files it would queue) holds
 * at most `cap` entries, whatever the size of the tree.
 */
export class CappedList<T> {
  readonly items: T[] = [];
  /** Items added beyond the cap: counted, not kept. */
  more = 0;

  constructor(private readonly cap: number) {}

  add(item: T): void {
    if (this.items.length < this.cap) this.items.push(item);
    else this.more += 1;
  }
}

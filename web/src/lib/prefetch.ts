// Which frames to fetch around the current one: further ahead in the direction of travel, some behind.

/** Frames to prefetch around `seq`, nearest first: `ahead` in the direction of travel and `behind` the other
 * way, within 1..end. Near either end of the video the budget the missing side cannot use goes to the other
 * side, so standing on the last frame prefetches `ahead + behind` frames backwards. */
export function prefetchOrder(seq: number, direction: 1 | -1, end: number, ahead = 4, behind = 2): number[] {
  const inside = (s: number) => s >= 1 && s <= end
  const room = (d: 1 | -1) => (d === 1 ? end - seq : seq - 1)
  const fwd = Math.min(ahead, room(direction))
  const back = Math.min(behind, room(-direction as 1 | -1))
  const wantFwd = Math.min(room(direction), fwd + (behind - back))
  const wantBack = Math.min(room(-direction as 1 | -1), back + (ahead - fwd))
  const out: number[] = []
  for (let i = 1; i <= Math.max(wantFwd, wantBack); i++) {
    if (i <= wantFwd) out.push(seq + direction * i)
    if (i <= wantBack) out.push(seq - direction * i)
  }
  return out.filter(inside)
}

/** Box chunks of `size` frames: the chunk holding `seq` and its first/last frame. */
export function chunkOf(seq: number, size: number, end: number): { chunk: number; from: number; to: number } {
  const chunk = Math.floor((seq - 1) / size)
  return { chunk, from: chunk * size + 1, to: Math.min(end, (chunk + 1) * size) }
}

/** A least-recently-used map that tells which values it dropped (so blob URLs can be revoked). */
export class Lru<V> {
  private map = new Map<string, V>()
  constructor(
    private readonly limit: number,
    private readonly onDrop: (value: V, key: string) => void = () => undefined,
  ) {}

  get(key: string): V | undefined {
    const v = this.map.get(key)
    if (v !== undefined) {
      this.map.delete(key)
      this.map.set(key, v)
    }
    return v
  }

  has(key: string): boolean {
    return this.map.has(key)
  }

  set(key: string, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    while (this.map.size > this.limit) {
      const [k, v] = this.map.entries().next().value as [string, V]
      this.map.delete(k)
      this.onDrop(v, k)
    }
  }

  values(): IterableIterator<V> {
    return this.map.values()
  }

  get size(): number {
    return this.map.size
  }

  clear(): void {
    this.map.clear()
  }
}

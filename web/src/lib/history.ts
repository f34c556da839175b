// Undo/redo over snapshots of a JSON document (small: a corrections document is at most a few MB).

export class History {
  private past: string[] = []
  private future: string[] = []

  constructor(private readonly limit = 200) {}

  get canUndo(): boolean {
    return this.past.length > 0
  }

  get canRedo(): boolean {
    return this.future.length > 0
  }

  /** Record the state before an edit (a no-op edit records nothing). */
  record(before: string, after: string): void {
    if (before === after) return
    this.past.push(before)
    if (this.past.length > this.limit) this.past.shift()
    this.future = []
  }

  /** The state to go back to from `current`, or null. */
  undo(current: string): string | null {
    const prev = this.past.pop()
    if (prev === undefined) return null
    this.future.push(current)
    return prev
  }

  redo(current: string): string | null {
    const next = this.future.pop()
    if (next === undefined) return null
    this.past.push(current)
    return next
  }

  clear(): void {
    this.past = []
    this.future = []
  }
}

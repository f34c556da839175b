import { describe, expect, it } from 'vitest'
import { History } from './history'

describe('History', () => {
  it('undoes and redoes, and a new edit drops the redo stack', () => {
    const h = new History()
    h.record('a', 'b')
    h.record('b', 'c')
    h.record('c', 'c') // no-op
    expect(h.undo('c')).toBe('b')
    expect(h.undo('b')).toBe('a')
    expect(h.undo('a')).toBeNull()
    expect(h.redo('a')).toBe('b')
    h.record('b', 'x')
    expect(h.canRedo).toBe(false)
    expect(h.undo('x')).toBe('b')
  })
  it('keeps at most `limit` steps', () => {
    const h = new History(2)
    for (const [a, b] of [['1', '2'], ['2', '3'], ['3', '4']] as const) h.record(a, b)
    expect(h.undo('4')).toBe('3')
    expect(h.undo('3')).toBe('2')
    expect(h.undo('2')).toBeNull()
  })
})

import { describe, expect, it } from 'vitest'
import { cellPercent, spriteRows, tileCell, tileFor, tileStyle } from './sprite'

describe('sprite tiles', () => {
  it('lays tiles out row by row', () => {
    expect(spriteRows(23, 10)).toBe(3)
    expect(spriteRows(20, 10)).toBe(2)
    expect(spriteRows(0, 10)).toBe(1)
    expect(tileCell(0, 10)).toEqual({ col: 0, row: 0 })
    expect(tileCell(9, 10)).toEqual({ col: 9, row: 0 })
    expect(tileCell(10, 10)).toEqual({ col: 0, row: 1 })
    expect(tileCell(22, 10)).toEqual({ col: 2, row: 2 })
  })

  it('positions the background so the first cell is 0 % and the last 100 %', () => {
    expect(cellPercent(0, 10)).toBe('0%')
    expect(cellPercent(9, 10)).toBe('100%')
    expect(cellPercent(3, 4)).toBe('100%')
    expect(cellPercent(0, 1)).toBe('0%')
    expect(tileStyle('s.webp', 22, 23, 10)).toEqual({
      backgroundImage: 'url(s.webp)',
      backgroundSize: '1000% 300%',
      backgroundPosition: `${(2 / 9) * 100}% 100%`,
    })
    expect(tileStyle('s.webp', 4, 5, 10).backgroundPosition).toBe(`${(4 / 9) * 100}% 0%`) // one padded row
  })

  it('finds the tile on screen at a frame', () => {
    const seqs = [1, 11, 21]
    expect([0, 1, 10, 11, 20, 21, 99].map((s) => tileFor(seqs, s))).toEqual([0, 0, 0, 1, 1, 2, 2])
    expect(tileFor([], 5)).toBe(0)
  })
})

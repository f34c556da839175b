import { describe, expect, it } from 'vitest'
import { Lru, chunkOf, prefetchOrder } from './prefetch'

describe('prefetchOrder', () => {
  it('looks further ahead in the direction of travel and some behind, within the video', () => {
    expect(prefetchOrder(10, 1, 100)).toEqual([11, 9, 12, 8, 13, 14])
    expect(prefetchOrder(10, -1, 100)).toEqual([9, 11, 8, 12, 7, 6])
    expect(prefetchOrder(2, -1, 3)).toEqual([1, 3])
  })
  it('spends the budget of a side the video does not have on the other side', () => {
    expect(prefetchOrder(10, 1, 10, 4, 2)).toEqual([9, 8, 7, 6, 5, 4])
    expect(prefetchOrder(1, -1, 10, 4, 2)).toEqual([2, 3, 4, 5, 6, 7])
    expect(prefetchOrder(9, 1, 10, 4, 2)).toEqual([10, 8, 7, 6, 5, 4])
  })
  it('chunks', () => {
    expect(chunkOf(1, 500, 1200)).toEqual({ chunk: 0, from: 1, to: 500 })
    expect(chunkOf(1001, 500, 1200)).toEqual({ chunk: 2, from: 1001, to: 1200 })
  })
})

describe('Lru', () => {
  it('drops the least recently used', () => {
    const dropped: string[] = []
    const lru = new Lru<number>(2, (_v, k) => dropped.push(k))
    lru.set('a', 1)
    lru.set('b', 2)
    lru.get('a')
    lru.set('c', 3)
    expect(dropped).toEqual(['b'])
    expect([lru.has('a'), lru.has('c'), lru.size]).toEqual([true, true, 2])
  })
})

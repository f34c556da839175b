import { describe, expect, it } from 'vitest'
import { IDENTITY, dragBox, handleAt, panBy, pixelAspect, toVideo, zoomAt } from './geometry'

const b = { x1: 10, y1: 10, x2: 50, y2: 30 }

describe('handles', () => {
  it('finds corners, edges and the inside', () => {
    expect(handleAt(b, 10, 10, 2)).toBe('nw')
    expect(handleAt(b, 51, 31, 2)).toBe('se')
    expect(handleAt(b, 30, 10, 2)).toBe('n')
    expect(handleAt(b, 50, 20, 2)).toBe('e')
    expect(handleAt(b, 30, 20, 2)).toBe('move')
    expect(handleAt(b, 80, 20, 2)).toBeNull()
  })
  it('moves within the frame and resizes with a minimum size', () => {
    expect(dragBox(b, 'move', 100, -50, 100, 100)).toEqual({ x1: 60, y1: 0, x2: 100, y2: 20 })
    expect(dragBox(b, 'se', 5, 5, 100, 100)).toEqual({ x1: 10, y1: 10, x2: 55, y2: 35 })
    expect(dragBox(b, 'w', 100, 0, 100, 100)).toEqual({ x1: 48, y1: 10, x2: 50, y2: 30 })
  })
})

describe('zoom and pan', () => {
  it('keeps the point under the pointer', () => {
    const v = zoomAt(IDENTITY, 2, 0.5, 0.5, 200, 100)
    expect(v).toEqual({ scale: 2, ox: 50, oy: 25 })
    expect(toVideo(v, 0.5, 0.5, 200, 100)).toEqual({ x: 100, y: 50 })
    expect(zoomAt(v, 0.1, 0.5, 0.5, 200, 100)).toEqual({ scale: 1, ox: 0, oy: 0 })
  })
  it('pans within the frame', () => {
    const v = zoomAt(IDENTITY, 2, 0, 0, 200, 100)
    expect(panBy(v, -0.25, 0, 200, 100)).toEqual({ scale: 2, ox: 25, oy: 0 })
    expect(panBy(v, -5, -5, 200, 100)).toEqual({ scale: 2, ox: 100, oy: 50 })
  })
})

describe('pixel aspect', () => {
  it('reads a sample aspect ratio and falls back to square pixels', () => {
    expect(pixelAspect('64:51')).toBeCloseTo(1.2549, 4)
    expect(pixelAspect('3:4')).toBe(0.75)
    expect(pixelAspect('1:1')).toBe(1)
    for (const bad of [null, undefined, '', '0:1', '4:0', 'x:y', '16'])
      expect(pixelAspect(bad)).toBe(1)
  })
})

import { describe, expect, it } from 'vitest'
import type { IndexFrame } from '../services/types'
import { formatTime, nearestSeq, shotStart, trackBoxAt } from './timeline'

// a VFR index: 0, 40, 80 ms, then a long frame to 200 ms
const frames: IndexFrame[] = [0, 40, 80, 200].map((time_ms, i) => ({ seq: i + 1, time_ms, key: i === 0 }))

describe('nearestSeq', () => {
  it('snaps to the closest frame, ties to the earlier one', () => {
    expect([20, 60, 140].map((ms) => nearestSeq(frames, ms))).toEqual([1, 2, 3])
    expect([19.9, 20.1, 60.1, 139.9, 140.1].map((ms) => nearestSeq(frames, ms))).toEqual([1, 2, 3, 3, 4])
  })
  it('clamps', () => {
    expect([-5, 0, 200, 900].map((ms) => nearestSeq(frames, ms))).toEqual([1, 1, 4, 4])
    expect(nearestSeq([], 10)).toBe(1)
  })
})

describe('formatTime', () => {
  it('prints microseconds', () => {
    expect(formatTime(0)).toBe('0:00.000000')
    expect(formatTime(1333.333)).toBe('0:01.333333')
    expect(formatTime(61_000.5)).toBe('1:01.000500')
    expect(formatTime(3_600_000 + 62_000)).toBe('1:01:02.000000')
    expect(formatTime(-3)).toBe('0:00.000000')
  })
})

describe('trackBoxAt', () => {
  const track = {
    id: 't',
    label: 'person',
    keyframes: [
      { seq: 1, x: 0, y: 0, width: 10, height: 10 },
      { seq: 4, x: 100, y: 50, width: 30, height: 10 },
    ],
  }
  it('interpolates by presentation time, not by frame number', () => {
    // seq 3 is at 80 of 0..200 ms: 40 % of the way, though it is 2 of 3 frames
    expect(trackBoxAt(track, 3, frames)).toEqual({ x: 40, y: 20, width: 18, height: 10 })
    expect(trackBoxAt(track, 4, frames)).toEqual({ x: 100, y: 50, width: 30, height: 10 })
  })
  it('is absent outside its key frames', () => {
    expect(trackBoxAt({ ...track, keyframes: track.keyframes.slice(1) }, 1, frames)).toBeNull()
    expect(trackBoxAt({ ...track, keyframes: [] }, 1, frames)).toBeNull()
  })
})

describe('shotStart', () => {
  const cuts = [40, 90]
  it('finds the next shot start after a frame', () => {
    expect([1, 39, 40, 41, 89].map((s) => shotStart(cuts, s, 1))).toEqual([40, 40, 90, 90, 90])
    expect(shotStart(cuts, 90, 1)).toBeNull()
    expect(shotStart([], 5, 1)).toBeNull()
  })
  it('finds the previous shot start before a frame, frame 1 included', () => {
    expect([2, 40, 41, 90, 200].map((s) => shotStart(cuts, s, -1))).toEqual([1, 1, 40, 40, 90])
    expect(shotStart(cuts, 1, -1)).toBeNull()
    expect(shotStart([], 7, -1)).toBe(1)
  })
})

import { describe, expect, it } from 'vitest'
import type { TrackInfo } from '../services/types'
import { normalize } from './corrections'
import { baseId, lanesOf, pct } from './lanes'

const tracks: TrackInfo[] = [
  { id: 1, label: 'person', start_seq: 1, end_seq: 50, frames: 45, gaps: [[20, 24]], mean_score: 0.8, flags: ['fragmented'] },
  { id: 2, label: 'person', start_seq: 60, end_seq: 90, frames: 31, gaps: [], mean_score: 0.7, flags: [] },
]

describe('lanesOf', () => {
  it('one lane per track with gaps and flags', () => {
    const lanes = lanesOf(tracks, normalize({}))
    expect(lanes.map((l) => [l.id, l.start, l.end, l.gaps, l.flags])).toEqual([
      [1, 1, 50, [[20, 24]], ['fragmented']],
      [2, 60, 90, [], []],
    ])
    expect(baseId(tracks)).toBe(2)
  })
  it('applies splits, merges, exclusions, extensions and manual tracks', () => {
    const doc = normalize({
      splitTracks: [{ track: 1, at: 30 }],
      mergedTracks: [[2, 3]],
      excludedTracks: [2],
      tracks: [
        { id: 'x1', label: 'person', extends: 1, keyframes: [{ seq: 51, x: 0, y: 0, width: 1, height: 1 }] },
        { id: 't1', label: 'manual', keyframes: [{ seq: 5, x: 0, y: 0, width: 1, height: 1 }, { seq: 8, x: 0, y: 0, width: 1, height: 1 }] },
      ],
    })
    const lanes = lanesOf([...tracks, { ...tracks[1]!, id: 3, start_seq: 95, end_seq: 99 }], doc)
    const by = (id: number | string) => lanes.find((l) => l.id === id)!
    expect([by(1).start, by(1).end, by(1).gaps]).toEqual([1, 29, [[20, 24]]])
    expect([by(4).start, by(4).end, by(4).flags]).toEqual([30, 50, ['split']])
    expect([by(2).end, by(2).excluded, by(3).mergedInto]).toEqual([99, true, 2])
    expect(by(1).extensions).toEqual([[51, 51]])
    expect([by('t1').start, by('t1').end, by('t1').manual]).toEqual([5, 8, true])
  })
  it('pct', () => {
    expect([pct(1, 100), pct(51, 100), pct(101, 100)]).toEqual([0, 50, 100])
  })
})

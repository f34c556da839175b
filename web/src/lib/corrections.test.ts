import { describe, expect, it } from 'vitest'
import type { IndexFrame, ReviewBox } from '../services/types'
import * as c from './corrections'

const frames: IndexFrame[] = Array.from({ length: 20 }, (_, i) => ({ seq: i + 1, time_ms: i * 40, key: i === 0 }))
const box = (track: number, x1 = 10, label = 'person'): ReviewBox => ({
  x1,
  y1: 10,
  x2: x1 + 20,
  y2: 50,
  label,
  source: 'detected',
  track,
  score: 0.9,
  excluded: false,
})

describe('edits', () => {
  it('adds, moves and removes drawn regions', () => {
    const d = c.emptyCorrections()
    c.addRect(d, 3, { x: 1, y: 2, width: 3, height: 4 })
    c.setRect(d, 3, 0, { x: 5, y: 5, width: 3, height: 4 })
    expect(d.drawnRectangles[3]).toEqual([{ x: 5, y: 5, width: 3, height: 4 }])
    c.removeRect(d, 3, 0)
    expect(d.drawnRectangles).toEqual({})
  })
  it('applies a region to a frame range as a constant manual track', () => {
    const d = c.emptyCorrections()
    const id = c.applyToRange(d, { x: 1, y: 2, width: 3, height: 4 }, 9, 4)
    expect(d.tracks).toEqual([
      { id, label: 'manual', keyframes: [{ seq: 4, x: 1, y: 2, width: 3, height: 4 }, { seq: 9, x: 1, y: 2, width: 3, height: 4 }] },
    ])
    const shown = c.displayBoxes(d, 6, [], frames)
    expect(shown).toMatchObject([{ x1: 1, y1: 2, x2: 4, y2: 6, kind: 'track' }])
  })
  it('overrides a detected box on one frame and shows it moved', () => {
    const d = c.emptyCorrections()
    c.setOverride(d, 2, 7, { x: 100, y: 100, width: 10, height: 10 })
    c.setOverride(d, 2, 7, { x: 101, y: 100, width: 10, height: 10 })
    expect(d.overrides).toEqual({ 2: [{ track: 7, x: 101, y: 100, width: 10, height: 10 }] })
    expect(c.displayBoxes(d, 2, [box(7)], frames)[0]).toMatchObject({ x1: 101, kind: 'override', track: 7 })
    expect(c.displayBoxes(d, 3, [box(7)], frames)[0]).toMatchObject({ x1: 10, kind: 'detected' })
    c.removeOverride(d, 2, 7)
    expect(d.overrides).toEqual({})
  })
  it('excludes by frame, by track and by rule', () => {
    const d = c.emptyCorrections()
    c.toggleExclude(d, 1, box(1), 'frame')
    expect(d.excluded[1]).toHaveLength(1)
    c.toggleExclude(d, 1, box(1), 'frame')
    expect(d.excluded).toEqual({})
    c.toggleTrackExcluded(d, 2)
    expect(c.displayBoxes(d, 1, [box(2)], frames)[0]!.kind).toBe('excluded')
    c.addRule(d, { label: 'face', smaller_than: 50 })
    c.addRule(d, {})
    expect(d.excludeRules).toEqual([{ label: 'face', smaller_than: 50 }])
    expect(c.displayBoxes(d, 1, [box(3, 10, 'face')], frames)[0]!.kind).toBe('excluded')
    expect(c.displayBoxes(d, 1, [box(3, 10, 'person')], frames)[0]!.kind).toBe('detected')
    expect(c.ruleMatches({ from_seq: 5, to_seq: 6 }, 4, 'x', box(1))).toBe(false)
  })
  it('previews splits and merges as effective track ids', () => {
    const d = c.emptyCorrections()
    c.splitTrack(d, 4, 10)
    c.splitTrack(d, 4, 10)
    expect(d.splitTracks).toEqual([{ track: 4, at: 10 }])
    expect(c.effectiveTrack(d, 4, 9, 20)).toBe(4)
    expect(c.effectiveTrack(d, 4, 10, 20)).toBe(21)
    c.mergeTracks(d, 1, 2)
    c.mergeTracks(d, 3, 2)
    c.mergeTracks(d, 1, 3)
    expect(d.mergedTracks).toEqual([[1, 2, 3]])
    expect(c.effectiveTrack(d, 3, 1, 20)).toBe(1)
    expect(c.displayBoxes(d, 1, [box(2)], frames)[0]!.track).toBe(1)
  })
  it('keeps manual key boxes per track, extends detected tracks only where they have no box', () => {
    const d = c.emptyCorrections()
    const id = c.trackKey(d, null, 5, { x: 0, y: 0, width: 10, height: 10 })
    c.trackKey(d, id, 7, { x: 20, y: 0, width: 10, height: 10 })
    expect(c.displayBoxes(d, 6, [], frames)[0]).toMatchObject({ x1: 10, kind: 'track' })
    expect(c.removeKey(d, id, 5)).toBe(true)
    expect(c.removeKey(d, id, 7)).toBe(false)
    expect(d.tracks).toEqual([])
    c.trackKey(d, 'x9', 5, { x: 0, y: 0, width: 10, height: 10 }, { label: 'person', extends: 9 })
    expect(d.tracks[0]).toMatchObject({ id: 'x9', label: 'person', extends: 9 })
    expect(c.displayBoxes(d, 5, [box(9)], frames).map((b) => b.kind)).toEqual(['detected'])
    expect(c.displayBoxes(d, 5, [], frames).map((b) => b.kind)).toEqual(['keyframe'])
  })
  it('orders muted ranges', () => {
    const d = c.emptyCorrections()
    c.addMuted(d, { start_seq: 9, end_seq: 3, mode: 'tone' })
    expect(d.mutedRanges).toEqual([{ start_seq: 3, end_seq: 9, mode: 'tone' }])
    c.removeMuted(d, 0)
    expect(d.mutedRanges).toEqual([])
  })
})

import { describe, expect, it } from 'vitest'
import { emptyCorrections, normalize } from './corrections'
import { rebase } from './rebase'

const r = (x: number) => ({ x, y: 0, width: 5, height: 5 })

describe('rebase', () => {
  it('adds my additions and removes my removals on top of theirs', () => {
    const base = normalize({ drawnRectangles: { 1: [r(1)] }, excludedTracks: [3] })
    const mine = normalize({ drawnRectangles: { 2: [r(2)] }, excludedTracks: [3, 4] })
    const theirs = normalize({ drawnRectangles: { 1: [r(1)], 5: [r(5)] }, excludedTracks: [3, 9] })
    const out = rebase(base, mine, theirs)
    expect(out.drawnRectangles).toEqual({ 2: [r(2)], 5: [r(5)] })
    expect(out.excludedTracks).toEqual([3, 9, 4])
  })
  it('merges manual tracks by id and renames a clash', () => {
    const t = (id: string, x: number) => ({ id, label: 'manual', keyframes: [{ seq: 1, ...r(x) }] })
    const base = normalize({ tracks: [t('t1', 1)] })
    const mine = normalize({ tracks: [t('t1', 2), t('t2', 3)] })
    const theirs = normalize({ tracks: [t('t1', 1), t('t2', 7)] })
    const out = rebase(base, mine, theirs)
    expect(out.tracks.map((x) => [x.id, x.keyframes[0]!.x])).toEqual([['t1', 2], ['t2', 7], ['t3', 3]])
  })
  it('is theirs when I changed nothing', () => {
    const theirs = normalize({ mutedRanges: [{ start_seq: 1, end_seq: 2, mode: 'mute' }] })
    expect(rebase(emptyCorrections(), emptyCorrections(), theirs)).toEqual(theirs)
  })
})

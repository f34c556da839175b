// Re-apply my edits on top of someone else's newer revision: a three-way merge of corrections documents.
// base: what I loaded; mine: my working copy; theirs: the latest saved revision. Per frame (or per list),
// what I added is added to theirs and what I removed is removed from theirs; manual tracks merge by id.
import type { CorrectionsDoc, ManualTrack } from '../services/types'
import { normalize } from './corrections'

const key = (v: unknown) => JSON.stringify(v)

function mergeList<T>(base: T[], mine: T[], theirs: T[]): T[] {
  const b = new Set(base.map(key))
  const m = new Set(mine.map(key))
  const removed = new Set([...b].filter((k) => !m.has(k)))
  const out = theirs.filter((v) => !removed.has(key(v)))
  const have = new Set(out.map(key))
  for (const v of mine) if (!b.has(key(v)) && !have.has(key(v))) out.push(v)
  return out
}

function mergeMap<T>(base: Record<string, T[]>, mine: Record<string, T[]>, theirs: Record<string, T[]>) {
  const out: Record<string, T[]> = {}
  for (const seq of new Set([...Object.keys(base), ...Object.keys(mine), ...Object.keys(theirs)])) {
    const list = mergeList(base[seq] ?? [], mine[seq] ?? [], theirs[seq] ?? [])
    if (list.length) out[seq] = list
  }
  return out
}

function mergeTracks(base: ManualTrack[], mine: ManualTrack[], theirs: ManualTrack[]): ManualTrack[] {
  const byId = (list: ManualTrack[]) => new Map(list.map((t) => [t.id, t]))
  const b = byId(base)
  const m = byId(mine)
  const out = theirs.filter((t) => !(b.has(t.id) && !m.has(t.id))) // I deleted it
  for (const t of mine) {
    const old = b.get(t.id)
    if (old && key(old) === key(t)) continue // untouched by me
    const i = out.findIndex((o) => o.id === t.id)
    if (i >= 0 && !old) {
      // both created a track with this id: keep theirs, mine under a fresh id
      let n = out.length + 1
      while (out.some((o) => o.id === `t${n}`) || m.has(`t${n}`)) n++
      out.push({ ...t, id: `t${n}` })
    } else if (i >= 0) out[i] = t
    else out.push(t)
  }
  return out
}

export function rebase(base: CorrectionsDoc, mine: CorrectionsDoc, theirs: CorrectionsDoc): CorrectionsDoc {
  const [b, m, t] = [normalize(base), normalize(mine), normalize(theirs)]
  return {
    drawnRectangles: mergeMap(b.drawnRectangles, m.drawnRectangles, t.drawnRectangles),
    excluded: mergeMap(b.excluded, m.excluded, t.excluded),
    excludedTracks: mergeList(b.excludedTracks, m.excludedTracks, t.excludedTracks),
    tracks: mergeTracks(b.tracks, m.tracks, t.tracks),
    overrides: mergeMap(b.overrides ?? {}, m.overrides ?? {}, t.overrides ?? {}),
    splitTracks: mergeList(b.splitTracks ?? [], m.splitTracks ?? [], t.splitTracks ?? []),
    mergedTracks: mergeList(b.mergedTracks ?? [], m.mergedTracks ?? [], t.mergedTracks ?? []),
    excludeRules: mergeList(b.excludeRules ?? [], m.excludeRules ?? [], t.excludeRules ?? []),
    mutedRanges: mergeList(b.mutedRanges ?? [], m.mutedRanges ?? [], t.mutedRanges ?? []),
  }
}

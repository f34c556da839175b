// Timeline lanes: one per track from `/tracks`, with the working copy's splits, merges, exclusions and
// extensions applied, and the manual tracks.
import type { CorrectionsDoc, TrackInfo } from '../services/types'

export interface Lane {
  id: number | string
  label: string
  start: number
  end: number
  gaps: [number, number][]
  flags: string[]
  excluded: boolean
  manual: boolean
  /** frames covered by manual key boxes continuing this track (`extends`) */
  extensions: [number, number][]
  /** the track this lane was merged into */
  mergedInto: number | null
}

/** The largest stored track id (split tracks are numbered after it). */
export function baseId(tracks: TrackInfo[]): number {
  return tracks.reduce((m, t) => Math.max(m, t.id), 0)
}

export function lanesOf(tracks: TrackInfo[], doc: CorrectionsDoc, base = baseId(tracks)): Lane[] {
  const lanes: Lane[] = tracks.map((t) => ({
    id: t.id,
    label: t.label,
    start: t.start_seq,
    end: t.end_seq,
    gaps: t.gaps.map((g) => [g[0], g[1]] as [number, number]),
    flags: [...t.flags],
    excluded: false,
    manual: false,
    extensions: [],
    mergedInto: null,
  }))
  ;(doc.splitTracks ?? []).forEach((s, i) => {
    const lane = lanes.find((l) => l.id === s.track && s.at > l.start && s.at <= l.end)
    if (!lane) return
    const id = base + 1 + i
    lanes.push({
      ...lane,
      id,
      start: s.at,
      gaps: lane.gaps.filter((g) => g[1] >= s.at),
      flags: ['split'],
      extensions: [],
    })
    lane.end = s.at - 1
    lane.gaps = lane.gaps.filter((g) => g[0] < s.at)
  })
  for (const group of doc.mergedTracks ?? []) {
    const keep = lanes.find((l) => l.id === group[0])
    for (const other of group.slice(1)) {
      const lane = lanes.find((l) => l.id === other)
      if (!lane || !keep) continue
      lane.mergedInto = group[0]!
      keep.start = Math.min(keep.start, lane.start)
      keep.end = Math.max(keep.end, lane.end)
    }
  }
  for (const lane of lanes) lane.excluded = typeof lane.id === 'number' && doc.excludedTracks.includes(lane.id)
  for (const t of doc.tracks) {
    const span: [number, number] = [t.keyframes[0]?.seq ?? 0, t.keyframes[t.keyframes.length - 1]?.seq ?? 0]
    const target = t.extends !== undefined ? lanes.find((l) => l.id === t.extends) : undefined
    if (target) target.extensions.push(span)
    else
      lanes.push({
        id: t.id,
        label: t.label,
        start: span[0],
        end: span[1],
        gaps: [],
        flags: [],
        excluded: false,
        manual: true,
        extensions: [],
        mergedInto: null,
      })
  }
  return lanes
}

/** Percent position of frame `seq` on a timeline of `end` frames (left edges: frame 1 at 0 %). */
export function pct(seq: number, end: number): number {
  return end > 1 ? ((seq - 1) / end) * 100 : 0
}

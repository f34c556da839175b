// The corrections document and every edit a reviewer makes to it, as pure functions (tested with vitest).
// They mirror the server's model (framemask.redact.corrections): what the canvas shows is what renders.
import { trackBoxAt } from './timeline'
import type {
  BoxRef,
  CorrectionsDoc,
  ExcludeRule,
  IndexFrame,
  ManualTrack,
  MutedRange,
  Rect,
  ReviewBox,
} from '../services/types'

export type ExcludeScope = 'frame' | 'track'

export type BoxKind = 'detected' | 'candidate' | 'excluded' | 'override' | 'drawn' | 'track' | 'keyframe'

/** A box as the canvas draws it; `key` names where it comes from: d<i> detected (index in /boxes),
 * r<i> drawn rectangle, t<id> manual track. */
export interface DisplayBox {
  key: string
  x1: number
  y1: number
  x2: number
  y2: number
  kind: BoxKind
  label: string
  track: number | string | null
  score?: number | null
}

const MATCH_PX = 1

export function emptyCorrections(): CorrectionsDoc {
  return {
    drawnRectangles: {},
    excluded: {},
    excludedTracks: [],
    tracks: [],
    overrides: {},
    splitTracks: [],
    mergedTracks: [],
    excludeRules: [],
    mutedRanges: [],
  }
}

/** A full document (every field present) from what the server stored; `note` is per revision and dropped. */
export function normalize(value: Partial<CorrectionsDoc>): CorrectionsDoc {
  const doc = { ...emptyCorrections(), ...(JSON.parse(JSON.stringify(value)) as Partial<CorrectionsDoc>) }
  delete doc.note
  return doc
}

export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

export function xyxy(r: Rect): { x1: number; y1: number; x2: number; y2: number } {
  return { x1: r.x, y1: r.y, x2: r.x + r.width, y2: r.y + r.height }
}

export function rectOf(b: { x1: number; y1: number; x2: number; y2: number }): Rect {
  return { x: b.x1, y: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1 }
}

function sameBox(a: BoxRef, b: BoxRef): boolean {
  if (a.label && b.label && a.label !== b.label) return false
  return (['x1', 'x2', 'y1', 'y2'] as const).every((k) => Math.abs(a[k] - b[k]) <= MATCH_PX)
}

function dropEmpty<T>(map: Record<string, T[]> | undefined, seq: number | string): void {
  if (map && map[seq]?.length === 0) delete map[seq]
}

// --- regions ----------------------------------------------------------------------------------------

export function addRect(doc: CorrectionsDoc, seq: number, rect: Rect): void {
  ;(doc.drawnRectangles[seq] ??= []).push(rect)
}

export function setRect(doc: CorrectionsDoc, seq: number, index: number, rect: Rect): void {
  const list = doc.drawnRectangles[seq]
  if (list && list[index]) list[index] = rect
}

export function removeRect(doc: CorrectionsDoc, seq: number, index: number): void {
  doc.drawnRectangles[seq]?.splice(index, 1)
  dropEmpty(doc.drawnRectangles, seq)
}

/** A region masked on every frame of from..to: a manual track with the same key box at both ends. */
export function applyToRange(doc: CorrectionsDoc, rect: Rect, from: number, to: number): string {
  const [a, b] = from <= to ? [from, to] : [to, from]
  const id = newTrackId(doc)
  const keyframes = a === b ? [{ seq: a, ...rect }] : [{ seq: a, ...rect }, { seq: b, ...rect }]
  doc.tracks.push({ id, label: 'manual', keyframes })
  return id
}

// --- detected boxes ---------------------------------------------------------------------------------

export function toggleExclude(doc: CorrectionsDoc, seq: number, box: ReviewBox, scope: ExcludeScope): void {
  const track = typeof box.track === 'number' ? box.track : null
  const ref: BoxRef = { x1: box.x1, x2: box.x2, y1: box.y1, y2: box.y2, label: box.label }
  const refs = doc.excluded[seq] ?? []
  const byFrame = refs.findIndex((r) => sameBox(r, ref))
  const byTrack = track !== null ? doc.excludedTracks.indexOf(track) : -1
  if (byFrame >= 0 || byTrack >= 0) {
    if (byFrame >= 0) refs.splice(byFrame, 1)
    if (refs.length === 0) delete doc.excluded[seq]
    if (byTrack >= 0) doc.excludedTracks.splice(byTrack, 1)
  } else if (scope === 'track' && track !== null) {
    doc.excludedTracks.push(track)
  } else {
    doc.excluded[seq] = [...refs, ref]
  }
}

/** Exclude (or include again) a detected track on every frame. */
export function toggleTrackExcluded(doc: CorrectionsDoc, track: number): void {
  const i = doc.excludedTracks.indexOf(track)
  if (i >= 0) doc.excludedTracks.splice(i, 1)
  else doc.excludedTracks.push(track)
}

/** A detected track's box moved or resized on one frame. */
export function setOverride(doc: CorrectionsDoc, seq: number, track: number, rect: Rect): void {
  const map = (doc.overrides ??= {})
  const list = (map[seq] ??= []).filter((o) => o.track !== track)
  list.push({ track, ...rect })
  map[seq] = list
}

export function removeOverride(doc: CorrectionsDoc, seq: number, track: number): void {
  const map = doc.overrides
  if (!map?.[seq]) return
  map[seq] = map[seq]!.filter((o) => o.track !== track)
  dropEmpty(map, seq)
}

// --- manual tracks ----------------------------------------------------------------------------------

export function newTrackId(doc: CorrectionsDoc): string {
  let n = doc.tracks.length + 1
  while (doc.tracks.some((t) => t.id === `t${n}`)) n++
  return `t${n}`
}

/** A key box of track `trackId` on `seq` (a new track when it does not exist); returns the track's id. */
export function trackKey(
  doc: CorrectionsDoc,
  trackId: string | null,
  seq: number,
  rect: Rect,
  options: { label?: string; extends?: number } = {},
): string {
  let track = doc.tracks.find((t) => t.id === trackId)
  if (!track) {
    track = { id: trackId ?? newTrackId(doc), label: options.label ?? 'manual', keyframes: [] } as ManualTrack
    if (options.extends !== undefined) track.extends = options.extends
    doc.tracks.push(track)
  }
  track.keyframes = [...track.keyframes.filter((k) => k.seq !== seq), { seq, ...rect }].sort((a, b) => a.seq - b.seq)
  return track.id
}

/** Removes a key box; returns false when that removed the whole track (its last key). */
export function removeKey(doc: CorrectionsDoc, trackId: string, seq: number): boolean {
  const track = doc.tracks.find((t) => t.id === trackId)
  if (!track) return false
  track.keyframes = track.keyframes.filter((k) => k.seq !== seq)
  if (track.keyframes.length > 0) return true
  doc.tracks = doc.tracks.filter((t) => t.id !== trackId)
  return false
}

export function removeTrack(doc: CorrectionsDoc, trackId: string): void {
  doc.tracks = doc.tracks.filter((t) => t.id !== trackId)
}

// --- track operations -------------------------------------------------------------------------------

/** Split detected track `track` at frame `at` (its boxes from `at` on get a new id). */
export function splitTrack(doc: CorrectionsDoc, track: number, at: number): void {
  const list = (doc.splitTracks ??= [])
  if (!list.some((s) => s.track === track && s.at === at)) list.push({ track, at })
}

/** One id (`keep`) for both tracks; joins existing merge groups. */
export function mergeTracks(doc: CorrectionsDoc, keep: number, other: number): void {
  if (keep === other) return
  const groups = (doc.mergedTracks ??= [])
  const a = groups.find((g) => g.includes(keep))
  const b = groups.find((g) => g.includes(other))
  if (a && a === b) return
  if (a && b) {
    a.push(...b)
    groups.splice(groups.indexOf(b), 1)
  } else if (a) a.push(other)
  else if (b) b.push(keep)
  else groups.push([keep, other])
}

export function addRule(doc: CorrectionsDoc, rule: ExcludeRule): void {
  const clean: ExcludeRule = {}
  if (rule.label) clean.label = rule.label
  if (rule.smaller_than) clean.smaller_than = rule.smaller_than
  if (rule.from_seq) clean.from_seq = rule.from_seq
  if (rule.to_seq) clean.to_seq = rule.to_seq
  if (Object.keys(clean).length === 0) return
  ;(doc.excludeRules ??= []).push(clean)
}

export function removeRule(doc: CorrectionsDoc, index: number): void {
  doc.excludeRules?.splice(index, 1)
}

export function ruleMatches(rule: ExcludeRule, seq: number, label: string, b: BoxRef): boolean {
  if (rule.label !== undefined && rule.label !== label) return false
  if ((rule.from_seq !== undefined && seq < rule.from_seq) || (rule.to_seq !== undefined && seq > rule.to_seq)) return false
  const side = Math.max(b.x2 - b.x1, b.y2 - b.y1)
  return rule.smaller_than === undefined || side < rule.smaller_than
}

export function addMuted(doc: CorrectionsDoc, range: MutedRange): void {
  const [a, b] = range.start_seq <= range.end_seq ? [range.start_seq, range.end_seq] : [range.end_seq, range.start_seq]
  ;(doc.mutedRanges ??= []).push({ start_seq: a, end_seq: b, mode: range.mode })
}

export function removeMuted(doc: CorrectionsDoc, index: number): void {
  doc.mutedRanges?.splice(index, 1)
}

// --- effective track ids (preview of unsaved splits and merges) -------------------------------------

/** The id a stored track shows on `seq` after this document's splits (new id = base + 1 + position) and merges. */
export function effectiveTrack(doc: CorrectionsDoc, track: number, seq: number, base: number): number {
  let tid = track
  ;(doc.splitTracks ?? []).forEach((s, i) => {
    if (tid === s.track && seq >= s.at) tid = base + 1 + i
  })
  const merged = new Map<number, number>()
  for (const g of doc.mergedTracks ?? []) for (const t of g.slice(1)) if (t !== g[0]) merged.set(t, g[0]!)
  const seen = new Set<number>()
  while (merged.has(tid) && !seen.has(tid)) {
    seen.add(tid)
    tid = merged.get(tid)!
  }
  return tid
}

// --- what the canvas draws --------------------------------------------------------------------------

/** Boxes to draw on `seq`: detected ones (from the server, with this document's exclusions, overrides,
 * splits and merges previewed) and the added regions of the working copy. */
export function displayBoxes(
  doc: CorrectionsDoc,
  seq: number,
  detected: ReviewBox[],
  frames: IndexFrame[],
  base = 0,
): DisplayBox[] {
  const refs = doc.excluded[seq] ?? []
  const overrides = doc.overrides?.[seq] ?? []
  const rules = doc.excludeRules ?? []
  const out: DisplayBox[] = []
  detected.forEach((b, i) => {
    if (b.source !== 'detected' && b.source !== 'candidate' && b.source !== 'override') return
    const track = typeof b.track === 'number' ? effectiveTrack(doc, b.track, seq, base) : b.track
    const off =
      (typeof track === 'number' && doc.excludedTracks.includes(track)) ||
      refs.some((r) => sameBox(r, b)) ||
      rules.some((r) => ruleMatches(r, seq, b.label, b))
    const moved = typeof track === 'number' ? overrides.find((o) => o.track === track) : undefined
    const where = moved ? xyxy(moved) : { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 }
    const kind: BoxKind = off ? 'excluded' : moved || b.source === 'override' ? 'override' : b.source
    out.push({ key: `d${i}`, ...where, label: b.label, track, score: b.score ?? null, kind })
  })
  ;(doc.drawnRectangles[seq] ?? []).forEach((r, i) =>
    out.push({ key: `r${i}`, ...xyxy(r), kind: 'drawn', label: 'manual', track: null }),
  )
  for (const t of doc.tracks) {
    if (t.extends !== undefined && detected.some((b) => b.track === t.extends && b.source !== 'track')) continue
    const r = trackBoxAt(t, seq, frames)
    if (!r) continue
    const kind = t.keyframes.some((k) => k.seq === seq) ? 'keyframe' : 'track'
    out.push({ key: `t${t.id}`, ...xyxy(r), kind, label: t.label, track: t.id })
  }
  return out
}

// The reviewer's working copy of the corrections document and the edits the canvas makes to it.
// It mirrors the server's model (framemask.redact.corrections): what is shown here is what renders.
import { computed, ref } from 'vue'
import type { DisplayBox } from '../components/FrameCanvas.vue'
import { trackBoxAt } from '../lib/timeline'
import type { BoxRef, CorrectionsDoc, IndexFrame, Rect, ReviewBox } from '../services/types'

export type ExcludeScope = 'frame' | 'track'

const MATCH_PX = 1

export function emptyCorrections(): CorrectionsDoc {
  return { drawnRectangles: {}, excluded: {}, excludedTracks: [], tracks: [] }
}

function sameBox(a: BoxRef, b: BoxRef): boolean {
  if (a.label && b.label && a.label !== b.label) return false
  return (['x1', 'x2', 'y1', 'y2'] as const).every((k) => Math.abs(a[k] - b[k]) <= MATCH_PX)
}

export function useCorrections() {
  const doc = ref<CorrectionsDoc>(emptyCorrections())
  const saved = ref('')
  const dirty = computed(() => JSON.stringify(doc.value) !== saved.value)
  const selectedTrack = ref<string | null>(null)

  function load(value: CorrectionsDoc): void {
    doc.value = { ...emptyCorrections(), ...JSON.parse(JSON.stringify(value)) }
    delete doc.value.note
    saved.value = JSON.stringify(doc.value)
  }

  function addRect(seq: number, rect: Rect): void {
    const list = (doc.value.drawnRectangles[seq] ??= [])
    list.push(rect)
  }

  function removeRect(seq: number, index: number): void {
    const list = doc.value.drawnRectangles[seq] ?? []
    list.splice(index, 1)
    if (list.length === 0) delete doc.value.drawnRectangles[seq]
  }

  function toggleExclude(seq: number, box: ReviewBox, scope: ExcludeScope): void {
    const track = typeof box.track === 'number' ? box.track : null
    const ref: BoxRef = { x1: box.x1, x2: box.x2, y1: box.y1, y2: box.y2, label: box.label }
    const refs = doc.value.excluded[seq] ?? []
    const byFrame = refs.findIndex((r) => sameBox(r, ref))
    const byTrack = track !== null ? doc.value.excludedTracks.indexOf(track) : -1
    if (byFrame >= 0 || byTrack >= 0) {
      if (byFrame >= 0) refs.splice(byFrame, 1)
      if (refs.length === 0) delete doc.value.excluded[seq]
      if (byTrack >= 0) doc.value.excludedTracks.splice(byTrack, 1)
    } else if (scope === 'track' && track !== null) {
      doc.value.excludedTracks.push(track)
    } else {
      doc.value.excluded[seq] = [...refs, ref]
    }
  }

  /** A key box for the selected manual track on `seq` (a new track if none is selected). */
  function trackKey(seq: number, rect: Rect): void {
    let track = doc.value.tracks.find((t) => t.id === selectedTrack.value)
    if (!track) {
      let n = doc.value.tracks.length + 1
      while (doc.value.tracks.some((t) => t.id === `t${n}`)) n++
      track = { id: `t${n}`, label: 'manual', keyframes: [] }
      doc.value.tracks.push(track)
      selectedTrack.value = track.id
    }
    track.keyframes = [...track.keyframes.filter((k) => k.seq !== seq), { seq, ...rect }].sort((a, b) => a.seq - b.seq)
  }

  function removeKey(trackId: string, seq: number): void {
    const track = doc.value.tracks.find((t) => t.id === trackId)
    if (!track) return
    track.keyframes = track.keyframes.filter((k) => k.seq !== seq)
    if (track.keyframes.length === 0) {
      doc.value.tracks = doc.value.tracks.filter((t) => t.id !== trackId)
      if (selectedTrack.value === trackId) selectedTrack.value = null
    }
  }

  /** Boxes to draw on `seq`: detected ones (excluded or not) from the server, the rest from the working copy. */
  function display(seq: number, detected: ReviewBox[], frames: IndexFrame[]): DisplayBox[] {
    const refs = doc.value.excluded[seq] ?? []
    const out: DisplayBox[] = []
    detected.forEach((b, i) => {
      if (b.source !== 'detected' && b.source !== 'candidate') return
      const off =
        (typeof b.track === 'number' && doc.value.excludedTracks.includes(b.track)) || refs.some((r) => sameBox(r, b))
      out.push({ ...b, key: `d${i}`, kind: off ? 'excluded' : b.source })
    })
    ;(doc.value.drawnRectangles[seq] ?? []).forEach((r, i) =>
      out.push({ key: `r${i}`, ...xyxy(r), kind: 'drawn', label: 'manual', track: null }),
    )
    for (const t of doc.value.tracks) {
      const r = trackBoxAt(t, seq, frames)
      if (!r) continue
      const kind = t.keyframes.some((k) => k.seq === seq) ? 'keyframe' : 'track'
      out.push({ key: `t${t.id}`, ...xyxy(r), kind, label: t.label, track: t.id })
    }
    return out
  }

  return { doc, dirty, selectedTrack, load, addRect, removeRect, toggleExclude, trackKey, removeKey, display }
}

function xyxy(r: Rect): { x1: number; y1: number; x2: number; y2: number } {
  return { x1: r.x, y1: r.y, x2: r.x + r.width, y2: r.y + r.height }
}

// Frame <-> time through the server's frame index only (never frame = time x fps).
import type { IndexFrame, KeyBox, ManualTrack, Rect } from '../services/types'

/** The frame whose presentation time is closest to `ms` (ties go to the earlier frame), clamped. */
export function nearestSeq(frames: IndexFrame[], ms: number): number {
  if (frames.length === 0) return 1
  let lo = 0
  let hi = frames.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (frames[mid]!.time_ms < ms) lo = mid + 1
    else hi = mid
  }
  // lo: first frame at or after ms; compare with the one before it
  if (lo > 0 && ms - frames[lo - 1]!.time_ms <= frames[lo]!.time_ms - ms) lo -= 1
  return frames[lo]!.seq
}

/** The start of the next shot after `seq` (`direction` 1) or of the previous one before it (-1): shots start at
 * frame 1 and at every cut (`cuts`: ascending frames, from `/boxes`); null when there is none that way. */
export function shotStart(cuts: readonly number[], seq: number, direction: 1 | -1): number | null {
  if (direction > 0) return cuts.find((c) => c > seq) ?? null
  const before = [1, ...cuts].filter((c) => c < seq)
  return before.length ? before[before.length - 1]! : null
}

/** `m:ss.uuuuuu` (or `h:mm:ss.uuuuuu`) of a time in milliseconds: microsecond precision, as the server
 * prints every time (3 decimals of a ms), so the shown time maps back to its own frame through `frame_at`
 * (`GET /frame?ms=`, `framemask locate --ms`). Whole milliseconds would land on the previous frame. */
export function formatTime(ms: number): string {
  const total = Math.max(0, Math.round(ms * 1000)) // µs
  const micro = total % 1_000_000
  const s = Math.floor(total / 1_000_000) % 60
  const m = Math.floor(total / 60_000_000) % 60
  const h = Math.floor(total / 3_600_000_000)
  const mm = h ? String(m).padStart(2, '0') : String(m)
  return `${h ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}.${String(micro).padStart(6, '0')}`
}

/** A manual track's box on `seq`: its key box, or linear by presentation time between key boxes. */
export function trackBoxAt(track: ManualTrack, seq: number, frames: IndexFrame[]): Rect | null {
  const keys = track.keyframes
  if (keys.length === 0 || seq < keys[0]!.seq || seq > keys[keys.length - 1]!.seq) return null
  const after = keys.findIndex((k) => k.seq >= seq)
  const b = keys[after]!
  if (b.seq === seq) return rectOf(b)
  const a = keys[after - 1]!
  const time = (s: number) => frames[s - 1]?.time_ms ?? s
  const span = time(b.seq) - time(a.seq)
  const t = span > 0 ? (time(seq) - time(a.seq)) / span : (seq - a.seq) / (b.seq - a.seq)
  const mix = (p: number, q: number) => p + (q - p) * t
  return { x: mix(a.x, b.x), y: mix(a.y, b.y), width: mix(a.width, b.width), height: mix(a.height, b.height) }
}

function rectOf(k: KeyBox): Rect {
  return { x: k.x, y: k.y, width: k.width, height: k.height }
}

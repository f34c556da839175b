// Shapes of the framemask API (see /docs on a running server).

export type Role = 'viewer' | 'editor' | 'admin'
export type Variant = 'processed' | 'original'

export interface Me {
  name: string
  role: Role
  token_id: number | null
}

export interface Job {
  id: string
  kind: string
  video_id: string | null
  status: 'queued' | 'running' | 'succeeded' | 'failed'
  progress: number
  stage: string | null
  attempts: number
  max_attempts: number
  error: string | null
}

export interface Video {
  id: string
  filename: string
  status: 'uploaded' | 'queued' | 'processing' | 'ready' | 'failed'
  error: string | null
  created_at: string
  width: number | null
  height: number | null
  duration_ms: number | null
  fps: number | null
  vfr: boolean | null
  endSequence: number | null
  processed: boolean
  job: Job | null
}

export interface VideoList {
  items: Video[]
  total: number
}

export interface IndexFrame {
  seq: number
  time_ms: number
  key: boolean
}

export interface FrameIndexDoc {
  endSequence: number
  time_base: string
  frames: IndexFrame[]
}

/** A box as `/boxes` returns it: pixels of the displayed frame. */
export interface ReviewBox {
  x1: number
  x2: number
  y1: number
  y2: number
  label: string
  /** detected: a confirmed track's box; candidate: a detection tracking did not confirm (masked all the same) */
  source: 'detected' | 'candidate' | 'drawn' | 'track'
  track: number | string | null
  score?: number | null
  excluded: boolean
}

export interface BoxesDoc {
  endSequence: number
  revision: number | null
  frames: { seq: number; boxes: ReviewBox[] }[]
}

/** seed 000's drawn rectangle */
export interface Rect {
  x: number
  y: number
  width: number
  height: number
}

export interface KeyBox extends Rect {
  seq: number
}

export interface ManualTrack {
  id: string
  label: string
  keyframes: KeyBox[]
}

export interface BoxRef {
  x1: number
  x2: number
  y1: number
  y2: number
  label?: string
}

export interface CorrectionsDoc {
  drawnRectangles: Record<string, Rect[]>
  excluded: Record<string, BoxRef[]>
  excludedTracks: number[]
  tracks: ManualTrack[]
  note?: string
}

export interface RevisionInfo {
  number: number
  author: string | null
  created_at: string
  note: string | null
}

export interface CorrectionsState {
  revision: RevisionInfo | null
  corrections: CorrectionsDoc
  rendered_revision: number | null
  final: boolean
}

export interface RevisionSaved {
  revision: RevisionInfo
  changed_frames: number
}

export interface Thumbnails {
  url: string
  seqs: number[]
  columns: number
  tileWidth: number
  tileHeight: number
}

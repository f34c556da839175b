// Shapes of the framemask API (see /docs on a running server).

export type Role = 'viewer' | 'editor' | 'admin'
export type Variant = 'processed' | 'original' | 'final'
export type ReviewState = 'unreviewed' | 'in_review' | 'changes_requested' | 'approved'

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
  has_audio?: boolean | null
  latest_revision?: number | null
  rendered_revision?: number | null
  review_state?: ReviewState
  review_by?: string | null
  review_at?: string | null
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
  source: 'detected' | 'candidate' | 'override' | 'drawn' | 'track'
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
  /** continue a detected track over frames it has no box on */
  extends?: number
}

export interface BoxOverride extends Rect {
  track: number
}

export interface TrackSplit {
  track: number
  at: number
}

export interface ExcludeRule {
  label?: string
  smaller_than?: number
  from_seq?: number
  to_seq?: number
}

export interface MutedRange {
  start_seq: number
  end_seq: number
  mode: 'mute' | 'tone'
}

/** A detected track as `GET /tracks` lists it, with its review flags. */
export interface TrackInfo {
  id: number
  label: string
  start_seq: number
  end_seq: number
  frames: number
  gaps: [number, number][]
  mean_score: number
  flags: ('starts_inside' | 'ends_inside' | 'fragmented' | 'short')[]
}

export interface Waveform {
  duration_ms: number
  buckets: number
  peaks: number[]
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
  overrides?: Record<string, BoxOverride[]>
  splitTracks?: TrackSplit[]
  mergedTracks?: number[][]
  excludeRules?: ExcludeRule[]
  mutedRanges?: MutedRange[]
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

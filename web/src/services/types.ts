// Shapes of the framemask API. Server models come from the generated client (`npm run gen:api`).

import type * as G from './generated'

export type Role = 'viewer' | 'editor' | 'admin'
export type Variant = 'processed' | 'original' | 'final'
/** Where a frame image comes from: a variant, or an original decoded itself rather than from its review proxy. */
export type FrameVariant = Variant | 'original-exact'
export type ReviewState = 'unreviewed' | 'in_review' | 'changes_requested' | 'approved'

export interface Me {
  name: string
  role: Role
  token_id: number | null
}

export type Job = G.JobPublic

export type Video = G.VideoPublic

export type VideoList = G.VideoList

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
export type ReviewBox = G.ReviewBox

export type BoxesDoc = G.BoxesDoc

/** seed 000's drawn rectangle */
export type Rect = G.Rect

export type KeyBox = G.KeyBox

export interface ManualTrack {
  id: string
  label: string
  keyframes: KeyBox[]
  /** continue a detected track over frames it has no box on */
  extends?: number
}

export type BoxOverride = G.BoxOverride

export type TrackSplit = G.TrackSplit

export interface ExcludeRule {
  label?: string
  smaller_than?: number
  from_seq?: number
  to_seq?: number
}

export type MutedRange = G.MutedRange

/** A detected track as `GET /tracks` lists it, with its review flags. */
export type TrackInfo = G.TrackPublic

export type Waveform = G.Waveform

export type BoxRef = G.BoxRef

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

export type RevisionInfo = G.RevisionPublic

export interface CorrectionsState {
  revision: RevisionInfo | null
  corrections: CorrectionsDoc
  rendered_revision: number | null
  final: boolean
}

export type RevisionSaved = G.RevisionSaved

export interface Thumbnails {
  url: string
  seqs: number[]
  columns: number
  tileWidth: number
  tileHeight: number
}

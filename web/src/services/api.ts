// The one API client: Bearer token from the login page, typed calls, SSE over fetch (EventSource
// cannot send an Authorization header), upload progress over XHR (fetch cannot report it).
import { reactive } from 'vue'
import type {
  BoxesDoc,
  CorrectionsDoc,
  CorrectionsState,
  FrameIndexDoc,
  FrameVariant,
  Job,
  Me,
  ReviewState,
  RevisionSaved,
  TrackInfo,
  Thumbnails,
  Variant,
  Video,
  VideoList,
  Waveform,
} from './types'

const TOKEN_KEY = 'framemask.token'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

export const session = reactive({
  token: localStorage.getItem(TOKEN_KEY) ?? '',
  me: null as Me | null,
})

export function setToken(token: string): void {
  session.token = token
  session.me = null
  if (token) localStorage.setItem(TOKEN_KEY, token)
  else localStorage.removeItem(TOKEN_KEY)
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return session.token ? { Authorization: `Bearer ${session.token}`, ...extra } : extra
}

async function failure(resp: Response): Promise<ApiError> {
  let message = `${resp.status} ${resp.statusText}`
  let body: { detail?: unknown } = {}
  try {
    body = (await resp.json()) as { detail?: unknown }
    if (typeof body.detail === 'string') message = body.detail
    else if (Array.isArray(body.detail)) message = body.detail.map((d: { msg?: string }) => d.msg).join('; ')
  } catch {
    // not JSON: keep the status line
  }
  if (resp.status === 401) window.dispatchEvent(new CustomEvent('framemask:unauthorized'))
  return new ApiError(resp.status, message, body as Record<string, unknown>)
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const resp = await fetch(path, { ...init, headers: headers((init.headers as Record<string, string>) ?? {}) })
  if (!resp.ok) throw await failure(resp)
  return resp
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await (await call(path, init)).json()) as T
}

function send<T>(method: string, path: string, body: unknown): Promise<T> {
  return json<T>(path, { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } })
}

const v = (id: string) => `/api/videos/${encodeURIComponent(id)}`

export interface FrameImage {
  url: string
  seq: number
  timeMs: number
  /** The file it was read from (`X-Frame-Source`): the variant's own, or `proxy` for an original's review proxy. */
  source: string
}

export const api = {
  me: () => json<Me>('/api/me'),
  videos: () => json<VideoList>('/api/videos?limit=200'),
  video: (id: string) => json<Video>(v(id)),
  index: (id: string) => json<FrameIndexDoc>(`${v(id)}/index`),
  boxes: (id: string, from: number, to: number) => json<BoxesDoc>(`${v(id)}/boxes?from=${from}&to=${to}`),
  corrections: (id: string) => json<CorrectionsState>(`${v(id)}/corrections`),
  /** A new revision; 409 (ApiError.body.latest_revision) when another was saved after `baseRevision`. */
  saveCorrections: (id: string, doc: CorrectionsDoc, baseRevision: number) =>
    send<RevisionSaved>('PUT', `${v(id)}/corrections?base_revision=${baseRevision}`, doc),
  tracks: (id: string) => json<{ tracks: TrackInfo[] }>(`${v(id)}/tracks`),
  waveform: (id: string, buckets: number) => json<Waveform>(`${v(id)}/waveform?buckets=${buckets}`),
  setReviewState: (id: string, state: ReviewState) => send<Video>('PATCH', v(id), { review_state: state }),
  /** The redaction report as a file (fetched with the token, handed to the browser as a download). */
  async report(id: string, format: 'csv' | 'json'): Promise<Blob> {
    return (await call(`${v(id)}/report?format=${format}`)).blob()
  },
  render: (id: string) => json<{ job_id: string; revision: number | null }>(`${v(id)}/render`, { method: 'POST' }),
  job: (id: string) => json<Job>(`/api/jobs/${id}`),
  finalUrl: (id: string) => json<{ url: string }>(`${v(id)}/final/url`),
  streamUrl: (id: string, variant: Variant) => json<{ url: string }>(`${v(id)}/stream/url?variant=${variant}`),
  remove: (id: string) => call(v(id), { method: 'DELETE' }),

  /** One exact frame as an image (decoded server-side from its key frame). */
  async frame(id: string, seq: number, variant: FrameVariant, width?: number): Promise<FrameImage> {
    const size = width ? `&width=${width}` : ''
    const which = variant === 'original-exact' ? 'original&exact=true' : variant
    const resp = await call(`${v(id)}/frame?seq=${seq}&variant=${which}&format=jpeg&quality=90${size}`)
    const url = URL.createObjectURL(await resp.blob())
    const header = (name: string) => resp.headers.get(name)
    return {
      url,
      seq: Number(header('X-Frame-Seq')),
      timeMs: Number(header('X-Frame-Time-Ms')),
      source: header('X-Frame-Source') ?? variant,
    }
  },

  /** The low-resolution timeline sprite: tile i shows frame seqs[i]. */
  async thumbnails(id: string, every: number, width: number, variant: Variant): Promise<Thumbnails> {
    const resp = await call(`${v(id)}/thumbnails?every=${every}&width=${width}&variant=${variant}`)
    const h = (name: string) => resp.headers.get(name) ?? ''
    return {
      url: URL.createObjectURL(await resp.blob()),
      seqs: h('X-Thumbnail-Seqs').split(',').map(Number),
      columns: Number(h('X-Thumbnail-Columns')),
      tileWidth: Number(h('X-Thumbnail-Width')),
      tileHeight: Number(h('X-Thumbnail-Height')),
    }
  },

  /** Upload with progress (0..1); resolves with the new video's id and processing job. */
  upload(file: File, onProgress: (fraction: number) => void): Promise<{ id: string; job_id: string }> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest()
      xhr.open('POST', '/api/videos')
      xhr.setRequestHeader('Authorization', `Bearer ${session.token}`)
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
      xhr.onerror = () => reject(new ApiError(0, 'network error during upload'))
      xhr.onload = () => {
        let body: { detail?: string; id?: string; job_id?: string } = {}
        try {
          body = JSON.parse(xhr.responseText) as typeof body
        } catch {
          // keep empty
        }
        if (xhr.status === 201 && body.id && body.job_id) resolve({ id: body.id, job_id: body.job_id })
        else reject(new ApiError(xhr.status, body.detail ?? `upload failed (${xhr.status})`))
      }
      const form = new FormData()
      form.append('file', file)
      xhr.send(form)
    })
  },

  /** Live job progress (Server-Sent Events read through fetch); resolves with the final job state. */
  async followJob(jobId: string, onJob: (job: Job) => void, signal?: AbortSignal): Promise<Job> {
    const resp = await call(`/api/jobs/${jobId}/events`, { signal })
    const reader = resp.body!.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    let last: Job | null = null
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let cut: number
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut)
        buffer = buffer.slice(cut + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event === 'progress' && data) {
          last = JSON.parse(data) as Job
          onJob(last)
        }
      }
    }
    return last ?? (await api.job(jobId))
  },
}

// Exact frames from the server as blob URLs: an LRU cache and prefetch both ways around the current frame.
import { ref, type Ref } from 'vue'
import { Lru, prefetchOrder } from '../lib/prefetch'
import { api } from '../services/api'
import type { FrameVariant } from '../services/types'

/** Frames fetched ahead of the current one in the direction of travel, and behind it (stepping back after
 * stepping forward, or from the end, finds its frames too). */
export const AHEAD = 8
export const BEHIND = 4
const MAX_PENDING = 4

export function useFrameImages(videoId: string, end: Ref<number>, capacity = 64) {
  const image = ref<string | null>(null)
  const shown = ref(0)
  /** The shown image's source (`X-Frame-Source`): `proxy` when an original's frame came from its review proxy. */
  const source = ref('')
  const sources = new Map<string, string>()
  const error = ref('')
  // decoded copies of the cached frames: showing a prefetched frame then needs no JPEG decode
  const decoded = new Map<string, HTMLImageElement>()
  const cache = new Lru<string>(capacity, (url) => {
    decoded.delete(url)
    sources.delete(url)
    if (url !== image.value) URL.revokeObjectURL(url)
  })
  const pending = new Map<string, Promise<string>>()
  let last = 0
  // the frames to have around the current one, nearest first (refilled as prefetches finish)
  let around: { variant: FrameVariant; seqs: number[] } = { variant: 'processed', seqs: [] }

  function fetchFrame(seq: number, variant: FrameVariant): Promise<string> {
    const key = `${variant}:${seq}`
    const hit = cache.get(key)
    if (hit) return Promise.resolve(hit)
    let p = pending.get(key)
    if (!p) {
      p = api.frame(videoId, seq, variant).then(async (got) => {
        const img = new Image()
        img.src = got.url
        await img.decode().catch(() => undefined)
        decoded.set(got.url, img)
        sources.set(got.url, got.source)
        cache.set(key, got.url)
        return got.url
      })
      p.finally(() => pending.delete(key)).catch(() => undefined)
      pending.set(key, p)
    }
    return p
  }

  /** Start prefetches of the window's missing frames, nearest first, while fewer than MAX_PENDING are in
   * flight (the browser has 6 connections per host, and boxes and thumbnails need some). */
  function pump(): void {
    const { variant, seqs } = around
    for (const s of seqs) {
      if (pending.size >= MAX_PENDING) break
      const key = `${variant}:${s}`
      if (cache.has(key) || pending.has(key)) continue
      fetchFrame(s, variant).then(pump, () => undefined)
    }
  }

  /** Show `seq` (the cached image at once when there is one), then keep the frames around it prefetched. */
  async function show(seq: number, variant: FrameVariant, isCurrent: () => boolean): Promise<void> {
    const direction: 1 | -1 = seq < last ? -1 : 1
    last = seq
    const cached = cache.get(`${variant}:${seq}`)
    image.value = cached ?? null
    if (cached) {
      shown.value = seq
      source.value = sources.get(cached) ?? ''
    }
    const current = fetchFrame(seq, variant)
    // prefetch at once, in the direction of travel first (the server decodes them while this one travels),
    // and keep the window full as they arrive, so standing still fills it too
    around = { variant, seqs: prefetchOrder(seq, direction, end.value, AHEAD, BEHIND) }
    pump()
    try {
      const url = await current
      if (isCurrent()) {
        image.value = url
        shown.value = seq
        source.value = sources.get(url) ?? ''
      }
    } catch (e) {
      if (isCurrent()) error.value = `frame ${seq}: ${e instanceof Error ? e.message : e}`
    }
  }

  function dispose(): void {
    around = { variant: around.variant, seqs: [] }
    for (const url of cache.values()) URL.revokeObjectURL(url)
    cache.clear()
    decoded.clear()
    sources.clear()
  }

  return { image, shown, source, error, fetchFrame, show, dispose }
}

// Playback: forwards through the <video> stream (approximate; pausing snaps to the nearest real frame),
// backwards by stepping through exact frames at their own pace (J).
import { nextTick, ref, type Ref } from 'vue'
import { startPlayback } from '../lib/playback'
import { nearestSeq } from '../lib/timeline'
import { api } from '../services/api'
import type { IndexFrame, Variant } from '../services/types'

export function usePlayback(
  videoId: string,
  frames: Ref<IndexFrame[]>,
  seq: Ref<number>,
  variant: Ref<Variant>,
  player: Ref<HTMLVideoElement | null>,
  seek: (s: number) => void,
) {
  const playing = ref<false | 'forward' | 'reverse'>(false)
  const src = ref('')
  let startMs = 0
  let timer: number | undefined

  async function streamUrl(): Promise<string> {
    if (variant.value === 'final') return (await api.finalUrl(videoId)).url
    return (await api.streamUrl(videoId, variant.value)).url
  }

  function firstFrameTime(el: HTMLVideoElement): Promise<number> {
    return new Promise((resolve) => {
      el.requestVideoFrameCallback((_now, meta) => resolve(meta.mediaTime * 1000))
      el.currentTime = 0
    })
  }

  async function forward(): Promise<void> {
    if (playing.value === 'forward') return
    stop()
    if (seq.value >= frames.value.length) seek(1)
    src.value = await streamUrl() // fresh every time: signed links expire
    playing.value = 'forward'
    await nextTick()
    const el = player.value
    if (!el) return
    if (el.readyState < 1) await new Promise((r) => el.addEventListener('loadedmetadata', r, { once: true }))
    startMs = await firstFrameTime(el)
    const fromMs = frames.value[seq.value - 1]?.time_ms ?? 0
    el.currentTime = (startMs + fromMs) / 1000
    const tick = (_now: number, meta: VideoFrameCallbackMetadata) => {
      if (playing.value !== 'forward') return
      seq.value = nearestSeq(frames.value, meta.mediaTime * 1000 - startMs)
      el.requestVideoFrameCallback(tick)
    }
    el.requestVideoFrameCallback(tick)
    await startPlayback(el) // Space pressed again before it started: pause() has already stopped it
  }

  function reverse(): void {
    if (playing.value === 'reverse') return
    stop()
    playing.value = 'reverse'
    const step = () => {
      if (playing.value !== 'reverse') return
      if (seq.value <= 1) return pause()
      const s = seq.value - 1
      const gap = (frames.value[s]?.time_ms ?? 0) - (frames.value[s - 1]?.time_ms ?? 0)
      seek(s)
      timer = window.setTimeout(step, Math.max(16, gap || 40))
    }
    step()
  }

  function stop(): void {
    window.clearTimeout(timer)
    player.value?.pause()
  }

  /** Stop and show the exact frame at the stop position. */
  function pause(): void {
    const was = playing.value
    stop()
    playing.value = false
    if (was === 'forward') seek(seq.value)
  }

  function toggle(): void {
    if (playing.value) pause()
    else void forward()
  }

  return { playing, src, forward, reverse, pause, toggle, stop }
}

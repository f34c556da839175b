// Review boxes (`/boxes`) loaded in chunks of frames as the reviewer moves; reloaded after a save. Every
// response also lists the frames that start a shot over the whole video (`cuts`).
import { ref, type Ref } from 'vue'
import { chunkOf } from '../lib/prefetch'
import { api } from '../services/api'
import type { ReviewBox } from '../services/types'

export function useBoxChunks(videoId: string, end: Ref<number>, size = 500) {
  const version = ref(0)
  const error = ref('')
  const cuts = ref<number[]>([])
  let boxes = new Map<number, ReviewBox[]>()
  let loaded = new Set<number>()

  async function ensure(seq: number): Promise<void> {
    if (!end.value) return
    const { chunk, from, to } = chunkOf(seq, size, end.value)
    if (loaded.has(chunk)) return
    loaded.add(chunk)
    const into = boxes
    try {
      const doc = await api.boxes(videoId, from, to)
      for (const f of doc.frames) into.set(f.seq, f.boxes)
      cuts.value = doc.cuts ?? []
      version.value++
    } catch (e) {
      loaded.delete(chunk)
      error.value = `boxes: ${e instanceof Error ? e.message : e}`
    }
  }

  function of(seq: number): ReviewBox[] {
    void version.value
    return boxes.get(seq) ?? []
  }

  /** Forget every chunk (a new revision changes boxes) and load the one holding `seq` again. */
  async function reload(seq: number): Promise<void> {
    boxes = new Map()
    loaded = new Set()
    await ensure(seq)
  }

  return { version, error, cuts, ensure, of, reload }
}

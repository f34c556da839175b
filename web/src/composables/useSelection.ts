// What the reviewer has selected: a box on the canvas (by its display key) and a track lane.
import { ref } from 'vue'

export function useSelection() {
  const box = ref<string | null>(null)
  const lane = ref<number | string | null>(null)
  /** the manual track that new key boxes go to */
  const manualTrack = ref<string | null>(null)

  /** After moving to another frame: a detected box's key means another box there; a manual track's stays. */
  function onSeek(): void {
    if (box.value && !box.value.startsWith('t')) box.value = null
  }

  function clear(): void {
    box.value = null
  }

  return { box, lane, manualTrack, onSeek, clear }
}

// Undo/redo of a JSON document held in a ref, with reactive can-undo/can-redo flags.
import { ref, type Ref } from 'vue'
import { History } from '../lib/history'

export function useHistory<T>(state: Ref<T>, onChange: () => void = () => undefined) {
  const history = new History()
  const canUndo = ref(false)
  const canRedo = ref(false)
  const sync = () => {
    canUndo.value = history.canUndo
    canRedo.value = history.canRedo
  }

  /** Apply an edit (mutating the state) as one undoable step. */
  function edit(fn: (value: T) => void): void {
    const before = JSON.stringify(state.value)
    fn(state.value)
    history.record(before, JSON.stringify(state.value))
    sync()
    onChange()
  }

  function step(next: string | null): boolean {
    if (next === null) return false
    state.value = JSON.parse(next) as T
    sync()
    onChange()
    return true
  }

  const undo = () => step(history.undo(JSON.stringify(state.value)))
  const redo = () => step(history.redo(JSON.stringify(state.value)))
  function clear(): void {
    history.clear()
    sync()
  }

  return { edit, undo, redo, clear, canUndo, canRedo }
}

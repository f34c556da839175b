// The reviewer's working copy of the corrections document: undoable edits, a local draft that survives a
// reload (localStorage, per video), and the revision it is based on (sent as `base_revision` on save).
import { computed, ref } from 'vue'
import { clone, normalize } from '../lib/corrections'
import { rebase } from '../lib/rebase'
import type { CorrectionsDoc } from '../services/types'
import { useHistory } from './useHistory'

export interface Draft {
  base_revision: number
  base: CorrectionsDoc
  doc: CorrectionsDoc
  saved_at: string
}

export const draftKey = (videoId: string) => `framemask.draft.${videoId}`

export function readDraft(videoId: string): Draft | null {
  try {
    const raw = localStorage.getItem(draftKey(videoId))
    return raw ? (JSON.parse(raw) as Draft) : null
  } catch {
    return null
  }
}

export function useCorrections(videoId: string) {
  const doc = ref<CorrectionsDoc>(normalize({}))
  const base = ref<CorrectionsDoc>(normalize({}))
  const baseRevision = ref(0)
  const saved = computed(() => JSON.stringify(base.value))
  const dirty = computed(() => JSON.stringify(doc.value) !== saved.value)

  function persist(): void {
    if (!dirty.value) {
      localStorage.removeItem(draftKey(videoId))
      return
    }
    const draft: Draft = {
      base_revision: baseRevision.value,
      base: base.value,
      doc: doc.value,
      saved_at: new Date().toISOString(),
    }
    try {
      localStorage.setItem(draftKey(videoId), JSON.stringify(draft))
    } catch {
      // storage full or disabled: the beforeunload guard still protects the edits
    }
  }

  const history = useHistory(doc, persist)

  /** The server's latest revision (`revision` 0: none yet); drops local edits (and the draft with `dropDraft`;
   * otherwise `restoreDraft` may bring it back). */
  function load(value: Partial<CorrectionsDoc>, revision: number, dropDraft = false): void {
    base.value = normalize(value)
    doc.value = clone(base.value)
    baseRevision.value = revision
    history.clear()
    if (dropDraft) persist()
  }

  /** After loading the server's state: bring back a draft of unsaved edits (re-applied on top when the
   * server moved on since). Returns what happened, for a message. */
  function restoreDraft(): 'restored' | 'rebased' | null {
    const draft = readDraft(videoId)
    if (!draft) return null
    const theirs = base.value
    const next = draft.base_revision === baseRevision.value ? normalize(draft.doc) : rebase(draft.base, draft.doc, theirs)
    if (JSON.stringify(next) === saved.value) {
      persist()
      return null
    }
    history.edit((d) => Object.assign(d, next))
    return draft.base_revision === baseRevision.value ? 'restored' : 'rebased'
  }

  /** Someone saved revision `revision` (document `theirs`) since: take it as the base and keep my edits on top. */
  function rebaseOnto(theirs: Partial<CorrectionsDoc>, revision: number): void {
    const mine = clone(doc.value)
    const old = clone(base.value)
    base.value = normalize(theirs)
    baseRevision.value = revision
    const next = rebase(old, mine, base.value)
    history.edit((d) => {
      for (const k of Object.keys(d)) delete (d as unknown as Record<string, unknown>)[k]
      Object.assign(d, next)
    })
  }

  /** The working copy was saved as `revision`. */
  function markSaved(revision: number): void {
    base.value = clone(doc.value)
    baseRevision.value = revision
    persist()
  }

  return {
    doc,
    base,
    baseRevision,
    dirty,
    load,
    restoreDraft,
    rebaseOnto,
    markSaved,
    edit: history.edit,
    undo: history.undo,
    redo: history.redo,
    canUndo: history.canUndo,
    canRedo: history.canRedo,
  }
}

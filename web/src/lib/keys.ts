// The editor's keyboard map (one place, shown by the `?` overlay).

export type Action =
  | 'play'
  | 'reverse'
  | 'pause'
  | 'forward'
  | 'next'
  | 'prev'
  | 'next10'
  | 'prev10'
  | 'nextShot'
  | 'prevShot'
  | 'first'
  | 'last'
  | 'delete'
  | 'undo'
  | 'redo'
  | 'help'
  | 'escape'
  | 'save'
  | 'overlay'

export interface KeyLike {
  key: string
  shiftKey?: boolean
  ctrlKey?: boolean
  metaKey?: boolean
  altKey?: boolean
}

export function actionOf(e: KeyLike): Action | null {
  const mod = e.ctrlKey || e.metaKey
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key
  if (mod) {
    if (k === 'z') return e.shiftKey ? 'redo' : 'undo'
    if (k === 'y') return 'redo'
    if (k === 's') return 'save'
    return null
  }
  if (e.altKey) return null
  switch (k) {
    case ' ':
      return 'play'
    case 'j':
      return 'reverse'
    case 'k':
      return 'pause'
    case 'l':
      return 'forward'
    case 'ArrowRight':
      return e.shiftKey ? 'next10' : 'next'
    case 'ArrowLeft':
      return e.shiftKey ? 'prev10' : 'prev'
    case 'ArrowDown':
      return 'nextShot'
    case 'ArrowUp':
      return 'prevShot'
    case 'Home':
      return 'first'
    case 'End':
      return 'last'
    case 'Delete':
    case 'Backspace':
      return 'delete'
    case '?':
      return 'help'
    case 'Escape':
      return 'escape'
    case 'o':
      return 'overlay'
    default:
      return null
  }
}

export const SHORTCUTS: [string, string][] = [
  ['Space', 'play / pause'],
  ['J / K / L', 'play backwards / pause / play forwards'],
  ['← / →', 'previous / next frame'],
  ['Shift + ← / →', '10 frames back / forward'],
  ['↑ / ↓', 'start of the previous / next shot (hard cuts, marked on the timeline)'],
  ['Home / End', 'first / last frame'],
  ['Delete', 'remove the selected box (a detected box: exclude it on this frame)'],
  ['Ctrl + Z / Ctrl + Shift + Z', 'undo / redo'],
  ['Ctrl + S', 'save'],
  ['O', 'boxes overlay on / off'],
  ['Ctrl + wheel', 'zoom; drag with Space held or the middle button to pan'],
  ['?', 'this overlay'],
  ['Esc', 'close / clear the selection'],
]

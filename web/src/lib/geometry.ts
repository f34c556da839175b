// Box handles (move/resize), and the zoom/pan view of the canvas: pure geometry in video pixels.

export interface Box {
  x1: number
  y1: number
  x2: number
  y2: number
}

export type Handle = 'move' | 'n' | 's' | 'e' | 'w' | 'ne' | 'nw' | 'se' | 'sw'

/** Which handle of `b` is at (x, y) within `tol` pixels (corners first, then edges, then inside). */
export function handleAt(b: Box, x: number, y: number, tol: number): Handle | null {
  const near = (p: number, q: number) => Math.abs(p - q) <= tol
  const inX = x >= b.x1 - tol && x <= b.x2 + tol
  const inY = y >= b.y1 - tol && y <= b.y2 + tol
  if (!inX || !inY) return null
  const v = near(y, b.y1) ? 'n' : near(y, b.y2) ? 's' : ''
  const h = near(x, b.x1) ? 'w' : near(x, b.x2) ? 'e' : ''
  if (v || h) return (v + h) as Handle
  return x >= b.x1 && x <= b.x2 && y >= b.y1 && y <= b.y2 ? 'move' : null
}

/** `b` after dragging `handle` by (dx, dy), kept inside 0..width x 0..height and at least `min` pixels. */
export function dragBox(b: Box, handle: Handle, dx: number, dy: number, width: number, height: number, min = 2): Box {
  if (handle === 'move') {
    const w = b.x2 - b.x1
    const h = b.y2 - b.y1
    const x1 = Math.min(Math.max(b.x1 + dx, 0), Math.max(0, width - w))
    const y1 = Math.min(Math.max(b.y1 + dy, 0), Math.max(0, height - h))
    return { x1, y1, x2: x1 + w, y2: y1 + h }
  }
  let { x1, y1, x2, y2 } = b
  if (handle.includes('w')) x1 = Math.min(Math.max(0, x1 + dx), x2 - min)
  if (handle.includes('e')) x2 = Math.max(Math.min(width, x2 + dx), x1 + min)
  if (handle.includes('n')) y1 = Math.min(Math.max(0, y1 + dy), y2 - min)
  if (handle.includes('s')) y2 = Math.max(Math.min(height, y2 + dy), y1 + min)
  return { x1, y1, x2, y2 }
}

export function roundBox(b: Box): Box {
  return { x1: Math.round(b.x1), y1: Math.round(b.y1), x2: Math.round(b.x2), y2: Math.round(b.y2) }
}

export const CURSORS: Record<Handle, string> = {
  move: 'move',
  n: 'ns-resize',
  s: 'ns-resize',
  e: 'ew-resize',
  w: 'ew-resize',
  ne: 'nesw-resize',
  sw: 'nesw-resize',
  nw: 'nwse-resize',
  se: 'nwse-resize',
}

/** The zoomed view: screen = (video - offset) * scale, relative to the frame's box. */
export interface View {
  scale: number
  ox: number
  oy: number
}

export const IDENTITY: View = { scale: 1, ox: 0, oy: 0 }

/** Zoom by `factor` keeping the video point under (px, py) (fractions 0..1 of the frame box) in place;
 * the scale stays within 1..maxScale and the view within the frame. */
export function zoomAt(v: View, factor: number, px: number, py: number, width: number, height: number, maxScale = 8): View {
  const scale = Math.min(Math.max(v.scale * factor, 1), maxScale)
  const vx = v.ox + (px * width) / v.scale
  const vy = v.oy + (py * height) / v.scale
  return clampView({ scale, ox: vx - (px * width) / scale, oy: vy - (py * height) / scale }, width, height)
}

/** Pan by a screen delta given in fractions of the frame box. */
export function panBy(v: View, fx: number, fy: number, width: number, height: number): View {
  return clampView({ ...v, ox: v.ox - (fx * width) / v.scale, oy: v.oy - (fy * height) / v.scale }, width, height)
}

export function clampView(v: View, width: number, height: number): View {
  const maxX = width - width / v.scale
  const maxY = height - height / v.scale
  return { scale: v.scale, ox: Math.min(Math.max(v.ox, 0), maxX), oy: Math.min(Math.max(v.oy, 0), maxY) }
}

/** Video pixel under a point given in fractions (0..1) of the frame box. */
export function toVideo(v: View, fx: number, fy: number, width: number, height: number): { x: number; y: number } {
  return { x: v.ox + (fx * width) / v.scale, y: v.oy + (fy * height) / v.scale }
}

/** The width of one pixel as displayed over its height, from a "num:den" sample aspect ratio (1 when absent). */
export function pixelAspect(ratio: string | null | undefined): number {
  const [num = 0, den = 0] = (ratio ?? '').split(':').map(Number)
  return num > 0 && den > 0 && Number.isFinite(num / den) ? num / den : 1
}

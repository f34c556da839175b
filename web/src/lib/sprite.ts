// Thumbnail sprites: the server lays tiles out row by row, `columns` per row, the last row padded
// (`api/frames.sprite`). Every tile lookup and CSS background of a sprite goes through here.

/** Inline style that shows one tile of a sprite stretched over the element (a type, so Vue's style binding
 * accepts it). */
export type SpriteStyle = {
  backgroundImage: string
  backgroundSize: string
  backgroundPosition: string
}

/** Rows of a sprite of `count` tiles, `columns` per row (at least one). */
export function spriteRows(count: number, columns: number): number {
  return Math.max(1, Math.ceil(count / Math.max(1, columns)))
}

/** Column and row of tile `i` (row-major). */
export function tileCell(i: number, columns: number): { col: number; row: number } {
  const c = Math.max(1, columns)
  return { col: i % c, row: Math.floor(i / c) }
}

/** The tile showing `seq`: the last tile whose frame is at or before it (tile 0 before the first). */
export function tileFor(seqs: readonly number[], seq: number): number {
  let i = 0
  while (i + 1 < seqs.length && seqs[i + 1]! <= seq) i++
  return i
}

/** CSS background-position percentage of cell `k` of `n`: 0 % is the first cell, 100 % the last. */
export function cellPercent(k: number, n: number): string {
  return n > 1 ? `${(k / (n - 1)) * 100}%` : '0%'
}

/** The style that shows tile `i` of a sprite of `count` tiles at `url`, scaled to the element. */
export function tileStyle(url: string, i: number, count: number, columns: number): SpriteStyle {
  const rows = spriteRows(count, columns)
  const { col, row } = tileCell(i, columns)
  return {
    backgroundImage: `url(${url})`,
    backgroundSize: `${columns * 100}% ${rows * 100}%`,
    backgroundPosition: `${cellPercent(col, columns)} ${cellPercent(row, rows)}`,
  }
}

// Starting a <video>: play() returns a promise that pausing or unmounting the element rejects.

/** Whether `err` is the rejection of a play() that a pause() or a removed element interrupted. */
export function isInterruptedPlay(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError'
}

/** Start playback: true once it plays, false if a pause (Space pressed again) or the element's removal
 * interrupted it first, which is the user's doing and no error; anything else (an unplayable source) throws. */
export async function startPlayback(media: Pick<HTMLMediaElement, 'play'>): Promise<boolean> {
  try {
    await media.play()
    return true
  } catch (err) {
    if (isInterruptedPlay(err)) return false
    throw err
  }
}

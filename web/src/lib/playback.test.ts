import { describe, expect, it } from 'vitest'
import { isInterruptedPlay, startPlayback } from './playback'

const rejecting = (err: unknown) => ({ play: () => Promise.reject(err) })

describe('startPlayback', () => {
  it('is true once playback starts', async () => {
    expect(await startPlayback({ play: () => Promise.resolve() })).toBe(true)
  })
  it('is false when a pause or the element removal interrupts play()', async () => {
    const interrupted = new DOMException('The play() request was interrupted by a call to pause().', 'AbortError')
    expect(await startPlayback(rejecting(interrupted))).toBe(false)
  })
  it('throws what is not an interruption', async () => {
    const unplayable = new DOMException('no supported source', 'NotSupportedError')
    await expect(startPlayback(rejecting(unplayable))).rejects.toBe(unplayable)
    await expect(startPlayback(rejecting(new Error('boom')))).rejects.toThrow('boom')
  })
})

describe('isInterruptedPlay', () => {
  it('knows AbortError from the rest', () => {
    expect(isInterruptedPlay(new DOMException('x', 'AbortError'))).toBe(true)
    expect(isInterruptedPlay(new DOMException('x', 'NotAllowedError'))).toBe(false)
    expect(isInterruptedPlay('AbortError')).toBe(false)
  })
})

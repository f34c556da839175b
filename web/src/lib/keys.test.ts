import { describe, expect, it } from 'vitest'
import { actionOf } from './keys'

describe('actionOf', () => {
  it('maps the editor keys', () => {
    expect(actionOf({ key: ' ' })).toBe('play')
    expect(['j', 'K', 'l'].map((key) => actionOf({ key }))).toEqual(['reverse', 'pause', 'forward'])
    expect(actionOf({ key: 'ArrowRight', shiftKey: true })).toBe('next10')
    expect(actionOf({ key: 'ArrowLeft' })).toBe('prev')
    expect(['ArrowUp', 'ArrowDown'].map((key) => actionOf({ key }))).toEqual(['prevShot', 'nextShot'])
    expect(actionOf({ key: 'z', ctrlKey: true })).toBe('undo')
    expect(actionOf({ key: 'Z', ctrlKey: true, shiftKey: true })).toBe('redo')
    expect(actionOf({ key: 'z', metaKey: true })).toBe('undo')
    expect(actionOf({ key: '?', shiftKey: true })).toBe('help')
    expect(actionOf({ key: 'Delete' })).toBe('delete')
    expect(actionOf({ key: 'x' })).toBeNull()
    expect(actionOf({ key: 'c', ctrlKey: true })).toBeNull()
  })
})

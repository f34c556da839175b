// Three pages need no router library: #/login, #/videos, #/videos/<id>.
import { onBeforeUnmount, ref } from 'vue'

export type Route = { name: 'login' } | { name: 'videos' } | { name: 'editor'; id: string }

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#/, '')
  const editor = /^\/videos\/([0-9a-f]{32})$/.exec(path)
  if (editor) return { name: 'editor', id: editor[1]! }
  if (path === '/login') return { name: 'login' }
  return { name: 'videos' }
}

export function navigate(path: string): void {
  window.location.hash = path
}

export function useHashRoute() {
  const route = ref<Route>(parseHash(window.location.hash))
  const update = () => (route.value = parseHash(window.location.hash))
  window.addEventListener('hashchange', update)
  onBeforeUnmount(() => window.removeEventListener('hashchange', update))
  return route
}

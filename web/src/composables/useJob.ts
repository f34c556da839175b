// Follow a job's live progress (SSE); the ref updates on every change until it ends.
import { onBeforeUnmount, ref } from 'vue'
import { api } from '../services/api'
import type { Job } from '../services/types'

export function useJob() {
  const job = ref<Job | null>(null)
  let abort: AbortController | null = null

  async function follow(jobId: string): Promise<Job> {
    abort?.abort()
    abort = new AbortController()
    const done = await api.followJob(jobId, (j) => (job.value = j), abort.signal)
    job.value = done
    return done
  }

  onBeforeUnmount(() => abort?.abort())
  return { job, follow }
}

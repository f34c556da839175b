// The editor is built into the Python package's static folder; the FastAPI app serves it at "/".
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

const api = process.env.FRAMEMASK_API ?? 'http://127.0.0.1:8000'

export default defineConfig({
  plugins: [vue()],
  build: {
    outDir: '../src/framemask/api/static',
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: { '/api': { target: api, changeOrigin: false } },
  },
})

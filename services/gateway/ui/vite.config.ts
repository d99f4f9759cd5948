import { defineConfig } from 'vite';

// The web UI: React + TanStack Query, bundled whole (no CDN); served by the gateway at `/`.
// Built by infra/ui-build.mjs into node_modules/.cache/crowbar-ui/dist.
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
  build: {
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    assetsInlineLimit: 0,
    rollupOptions: {
      // TanStack Query marks its modules "use client" (for React server components); nothing to preserve here.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
    },
  },
});

import { defineConfig } from 'vite';

export default defineConfig({
  // Django serves frontend/dist under STATIC_URL + "frontend/".
  base: '/static/frontend/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'react' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Django reads dist/.vite/manifest.json, key "src/main.jsx".
    manifest: true,
    rolldownOptions: {
      input: 'src/main.jsx',
      onwarn(warning, warn) {
        // "use client" only matters to server-component bundlers; this is a client bundle.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  test: {
    include: ['src/**/*.test.js'],
  },
});

// The console's bundle: fixed file names (the server embeds them with include_bytes!), written
// beside the API crate so that `cargo build` needs no Node.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

export default defineConfig({
  base: "/console/",
  plugins: [preact()],
  build: {
    outDir: "../crates/tessera-api/console",
    emptyOutDir: true,
    modulePreload: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "app.js",
        chunkFileNames: "app-[name].js",
        assetFileNames: "app[extname]",
      },
    },
  },
});

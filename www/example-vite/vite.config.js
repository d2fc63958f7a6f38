// The engine's worker and wasm are found through `new URL(..., import.meta.url)`; keep the package
// out of dependency pre-bundling so those URLs survive.
export default { optimizeDeps: { exclude: ["attend-llm"] }, worker: { format: "es" }, build: { target: "es2022" } };

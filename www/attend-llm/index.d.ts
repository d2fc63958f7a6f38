// Types of the attend-llm public API (OpenAI-shaped chat completions).

export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

export interface LoadProgress {
  /** "download" (network or cache), "upload" (to the GPU), "compile" (pipelines), "ready". */
  phase: "download" | "upload" | "compile" | "ready";
  loaded: number;
  total: number;
  /** Whether the bytes come from the offline model cache. */
  cached?: boolean;
}

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** KV-cache length in tokens (default: the model's, capped at 4096). */
  contextLength?: number;
  /**
   * Refuse, from the file's header and before any weight is downloaded, a model whose weights,
   * KV cache and activations would need more GPU memory than this many bytes (default: only the
   * adapter's own limits). The load rejects with a message naming the need and the limit.
   */
  maxGpuBytes?: number;
  /** Cancels the load. */
  signal?: AbortSignal;
  /** Store the download for offline use (default true for URLs). */
  cache?: boolean;
  /** Use this worker instead of the bundled one. */
  worker?: Worker;
}

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  stream?: boolean;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  seed?: number;
  stop?: string | string[];
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  /** Cancels the generation; the stream ends with finish_reason "stop". */
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prefill_tokens_per_second?: number;
  decode_tokens_per_second?: number;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: number; message: ChatMessage; finish_reason: FinishReason }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: number; delta: { role?: Role; content?: string }; finish_reason: FinishReason | null }[];
  usage?: Usage;
}

export interface EngineInfo {
  model: string;
  architecture: string;
  parameters: Record<string, number | string>;
  context_length: number;
  weight_bytes: number;
  kv_cache_bytes: number;
  gpu_bytes: number;
  adapter: string;
  /** Whether the kernels use WebGPU's shader-f16 (attend reads f16 as packed u32 by default). */
  shader_f16: boolean;
  shader_f16_available: boolean;
  /** Size of the WebAssembly memory: models stream through it, so it stays small. */
  wasm_heap_bytes: number;
}

export interface AttentionLens {
  layer: number;
  heads: number;
  /** The conversation's tokens as text pieces. */
  tokens: string[];
  /** `weights[h * tokens.length + j]`: attention of the last token (head h) to token j. */
  weights: number[];
}

export interface AttentionRequest {
  /** A raw prompt (tokenized like `tokenize`), a conversation (chat template), or token ids;
   *  none of them: the conversation so far. */
  prompt?: string;
  messages?: ChatMessage[];
  ids?: number[];
  /** Index of the query token. */
  token: number;
  layer?: number;
  head?: number;
}

export interface Attention {
  tokens: string[];
  query: number;
  layers: number[];
  heads: number[];
  /** `weights[l][h][j]`: attention of token `query` to token `j` (0..=query) at `layers[l]`, `heads[h]`. */
  weights: number[][][];
}

export type ModelSource = string | string[] | Blob | ArrayBuffer;

export declare class Engine {
  static load(source: ModelSource, options?: LoadOptions): Promise<Engine>;
  chat: {
    completions: {
      create(request: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
    };
  };
  tokenize(text: string): Promise<number[]>;
  info(): Promise<EngineInfo>;
  lens(layer?: number): Promise<AttentionLens>;
  attention(request: AttentionRequest): Promise<Attention>;
  /** Speed and bandwidth of the loaded model on this device (forgets the conversation). */
  bench(options?: BenchOptions): Promise<BenchReport>;
  unload(): Promise<void>;
}

export interface BenchOptions {
  promptTokens?: number;
  genTokens?: number;
  repeat?: number;
}

/** The same fields as `attend bench --json`. */
export interface BenchReport {
  model: string;
  adapter: string;
  prompt_tokens: number;
  gen_tokens: number;
  repeat: number;
  prefill_tok_s: number;
  decode_tok_s: number;
  ttft_s: number;
  load_s: number;
  compile_s: number;
  bytes_per_token: number;
  decode_gb_s: number;
  copy_gb_s: number;
  copy_kernel: string;
  buffer_copy_gb_s: number;
  roofline_fraction: number;
  dispatches_per_token: number;
  dispatches_per_layer: number;
  cpu_ms_per_token: number;
  gpu_bytes: number;
  weight_bytes: number;
  kv_bytes: number;
}

export interface CachedModel {
  url: string;
  bytes: number;
  complete: boolean;
}

export declare function listCachedModels(): Promise<CachedModel[]>;
export declare function deleteCachedModel(url: string): Promise<boolean>;

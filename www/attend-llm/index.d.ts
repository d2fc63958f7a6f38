// Types of the attend-llm public API (OpenAI-shaped chat completions and completions).

export type Role = "system" | "user" | "assistant" | "tool";

/** A call the assistant made; `arguments` is JSON text (an object is accepted in requests). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: Role;
  /** `null` beside `tool_calls` when the assistant said nothing else. */
  content: string | null;
  /** An assistant turn's calls (sent back in the next request as they came). */
  tool_calls?: ToolCall[];
  /** A `role: "tool"` turn: the id of the call this is the result of (required there). */
  tool_call_id?: string;
}

/** A function the model may call, shown to it through its chat template. */
export interface Tool {
  type: "function";
  function: {
    /** 1-64 letters, digits, `_` or `-`, unique among `tools`. */
    name: string;
    description?: string;
    /** The arguments' JSON Schema (enforced when `tool_choice` forces a call). */
    parameters?: JsonSchema;
    /** Accepted; forced calls are always strict. */
    strict?: boolean;
  };
}

/**
 * "none": tools are not shown and nothing is read as a call. "auto" (the default with tools):
 * a call the model writes comes back in `tool_calls`. "required" or a named function: exactly one
 * call is forced, its arguments decoded under the function's `parameters` schema.
 */
export type ToolChoice =
  | "none"
  | "auto"
  | "required"
  | { type: "function"; function: { name: string } };

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
  /**
   * How the KV cache stores keys and values: `"f16"` (default, half the memory) or `"f32"`
   * (twice the KV memory; `engine.attention` then matches fp32 transformers within 1e-3).
   */
  kvPrecision?: "f16" | "f32";
  /**
   * Cancels the load at any point (download, upload to the GPU, pipeline compilation): the
   * promise rejects with an `AbortError` ("loading … was cancelled"), every GPU buffer the load
   * made is freed, and the bytes downloaded so far stay cached, so loading again resumes.
   */
  signal?: AbortSignal;
  /**
   * Store the download for offline use (default true for URLs). When storage is full the load
   * rejects with a `QuotaExceededError` saying so; free space, or load with `cache: false`.
   */
  cache?: boolean;
  /**
   * How the kernel shapes (workgroup size, rows per invocation, how activations are bound) are
   * chosen for each weight matrix. `"measure"`: time the candidate shapes on this adapter (each
   * is a pipeline to compile) and keep the fastest in the model cache, so a reload compiles only
   * the winners. `"remembered"`: shapes measured by an earlier load, built-in defaults for the
   * rest. `"defaults"`: built-in shapes only. `"auto"` (default): `"measure"`, except on a CPU
   * adapter (SwiftShader), where it is `"remembered"`: there compiling the candidates costs a
   * first visit seconds per shape for a few percent of speed.
   */
  tune?: "auto" | "measure" | "remembered" | "defaults";
  /**
   * Forget the shapes an earlier load measured on this adapter, and (unless `tune` says
   * otherwise) measure them again.
   */
  retune?: boolean;
  /**
   * Use this worker instead of the bundled one. A failed or cancelled load leaves it running
   * (the bundled worker is ended instead), so the same worker can load again.
   */
  worker?: Worker;
}

/**
 * Sampling and stopping fields shared by chat completions and completions. Values attend cannot
 * honour are rejected with a `BadRequestError` (`status: 400`, `param`: the field); fields it does
 * not know are ignored and listed in a console warning, as OpenAI ignores them.
 */
export interface SamplingFields {
  stream?: boolean;
  /** `{ include_usage: true }`: the last streamed chunk carries `usage`. */
  stream_options?: { include_usage?: boolean };
  /** >= 0. Chat default: until the context is full; completions default: 16. */
  max_tokens?: number;
  /** >= 0, finite; 0 is greedy. Default 1. */
  temperature?: number;
  /** In (0, 1]. Default 1. */
  top_p?: number;
  /** >= 0 (0: off). llama.cpp / vLLM extension. */
  top_k?: number;
  /** In [0, 1]. llama.cpp / vLLM extension. */
  min_p?: number;
  /** > 0 (1: off). llama.cpp / vLLM extension. */
  repetition_penalty?: number;
  /** In [-2, 2]. */
  presence_penalty?: number;
  /** In [-2, 2]. */
  frequency_penalty?: number;
  /** Token id (as a string key) → bias added to its logit, in [-100, 100] (-100 bans it). */
  logit_bias?: Record<string, number>;
  /** Up to 16 strings of up to 1024 bytes; the answer ends before the first to appear. */
  stop?: string | string[];
  seed?: number;
  /** Only 1. */
  n?: 1;
  /** Accepted; the loaded model answers. */
  model?: string;
  /** Accepted and ignored (listed in the warning). */
  user?: string;
  /** Cancels the generation; the stream ends with finish_reason "stop". */
  signal?: AbortSignal;
}

/** A JSON Schema (the subset attend supports; see the README). */
export type JsonSchema = boolean | { [keyword: string]: unknown };

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      json_schema: {
        /** 1-64 letters, digits, `_` or `-`. */
        name: string;
        description?: string;
        schema: JsonSchema;
        /** Accepted; attend always decodes strictly under the schema. */
        strict?: boolean;
      };
    };

export interface ChatCompletionRequest extends SamplingFields {
  messages: ChatMessage[];
  /** The newer name of `max_tokens` (wins when both are given). */
  max_completion_tokens?: number;
  /** Return each generated token's log-probability in `choices[].logprobs.content`. */
  logprobs?: boolean;
  /** 0..20 most likely alternatives per token (needs `logprobs: true`). */
  top_logprobs?: number;
  /**
   * Structured output: `json_object` (any JSON object) or `json_schema` (JSON valid under the
   * schema) constrains decoding, so an answer with finish_reason "stop" always parses (and
   * validates). Compact JSON, no whitespace. A malformed or unsupported schema is a 400 naming
   * `response_format.json_schema.schema`.
   */
  response_format?: ResponseFormat;
  /**
   * Functions the model may call. The model's chat template must take tools in a syntax attend
   * reads (Qwen2.5/Hermes `<tool_call>` or Llama 3 JSON); otherwise a 400 naming `tools`.
   */
  tools?: Tool[];
  tool_choice?: ToolChoice;
  /** Accepted and ignored (the model may write several calls under "auto"; a forced one is one). */
  parallel_tool_calls?: boolean;
}

export interface CompletionRequest extends SamplingFields {
  /** Plain text continued (no chat template), a one-text list, or token ids. */
  prompt: string | [string] | number[];
  /**
   * Read special-token text in the prompt (`<|im_start|>`) as those tokens, like transformers'
   * tokenizer and llama.cpp (default true). attend's extension.
   */
  parse_special?: boolean;
  /** attend's extension: structured output as in chat completions. */
  response_format?: ResponseFormat;
  /** 0..20: return each token's logprob with this many alternatives (OpenAI's legacy shape). */
  logprobs?: number;
  /** Prepend the prompt to the returned text. */
  echo?: boolean;
  /** Only 1. */
  best_of?: 1;
  /** Only absent or empty. */
  suffix?: string | null;
}

/** "tool_calls": the answer holds at least one call in `message.tool_calls`. */
export type FinishReason = "stop" | "length" | "tool_calls";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: prompt tokens served from the KV cache of the previous request. */
  prompt_tokens_details?: { cached_tokens: number };
  prefill_tokens_per_second?: number;
  decode_tokens_per_second?: number;
}

export interface TopLogprob {
  token: string;
  logprob: number;
  /** The token's UTF-8 bytes (a token may hold part of a character). */
  bytes: number[] | null;
}

export interface TokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: number;
    message: ChatMessage;
    finish_reason: FinishReason;
    logprobs: { content: TokenLogprob[] } | null;
  }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: number;
    /** A tool call arrives whole in one delta, once it has closed. */
    delta: { role?: Role; content?: string; tool_calls?: (ToolCall & { index: number })[] };
    finish_reason: FinishReason | null;
    logprobs?: { content: TokenLogprob[] };
  }[];
  usage?: Usage;
}

/** A completions answer, and each streamed chunk of one. */
export interface TextCompletion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: {
    index: number;
    text: string;
    finish_reason: FinishReason | null;
    logprobs: {
      tokens: string[];
      token_logprobs: number[];
      top_logprobs: Record<string, number>[];
      text_offset: number[];
    } | null;
  }[];
  usage?: Usage;
}

/** How a rejected request fails (like the `openai` package's error). */
export interface BadRequestError extends Error {
  name: "BadRequestError";
  status: 400;
  /** The request field at fault. */
  param: string;
}

/** Hyperparameters of the loaded model. */
export interface EngineParameters {
  layers: number;
  d_model: number;
  heads: number;
  kv_heads: number;
  head_dim: number;
  ffn: number;
  vocab: number;
  /** 0: every layer attends to the whole context. */
  sliding_window: number;
  trained_context: number;
  rope_base: number;
  /** RoPE base of the sliding-window layers (Gemma 3's local layers). */
  rope_base_local: number;
  rope_scale: number;
  /** "neox": half-split pairs; "normal": adjacent pairs (llama.cpp's names). */
  rope_layout: "neox" | "normal";
  rope_dims: number;
  norm_eps: number;
  /** Attention logit soft-cap (Gemma 2); 0: none. */
  attn_softcap: number;
  /** Final logit soft-cap (Gemma 2); 0: none. */
  final_softcap: number;
  /** The RoPE frequency factors applied: Llama 3.1+'s, or LongRoPE's long/short ones (by context). */
  rope_factors: "none" | "llama3" | "longrope-long" | "longrope-short";
  /** Multiplies RoPE's cos and sin (LongRoPE's attention factor); 1: none. */
  rope_attn_factor: number;
  /** Every n-th layer has no RoPE (SmolLM3: 4); 0: every layer has it. */
  no_rope_every: number;
}

/** The model file's tensors of one type. */
export interface TensorTypeCount {
  /** ggml's name: "F32", "Q4_K", ... */
  type: string;
  count: number;
  bytes: number;
}

/** The same fields as `attend info --json`, plus `wasm_heap_bytes`. */
export interface EngineInfo {
  /** The name of the file, URL or Blob the model was loaded from (the first shard's). */
  model: string;
  architecture: string;
  parameters: EngineParameters;
  /** KV-cache positions of this engine (the model's own is `parameters.trained_context`). */
  context_length: number;
  weight_bytes: number;
  kv_cache_bytes: number;
  /** Activations and the other per-pass buffers. */
  activation_bytes: number;
  /** How the KV cache stores keys and values (the `kvPrecision` load option). */
  kv_precision: "f16" | "f32";
  /** Everything the engine holds on the GPU. */
  gpu_bytes: number;
  adapter: string;
  /**
   * Whether the adapter offers WebGPU's shader-f16. attend never needs it (its kernels read f16
   * weights and the f16 KV cache as packed u32), so it is not requested.
   */
  shader_f16_available: boolean;
  /** Size of the WebAssembly memory: models stream through it, so it stays small. */
  wasm_heap_bytes: number;
  /** Seconds the load spent tuning kernel shapes and compiling pipelines. */
  compile_s: number;
  /**
   * Pipelines compiled by the load: every candidate kernel shape on the first load on this
   * adapter, only the winners once their measurement is remembered in the model cache.
   */
  pipelines: number;
  tensor_types: TensorTypeCount[];
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
  /** The lens's own cost in the engine, ms (not the wait behind an answer); `engine.attention` only. */
  elapsed_ms?: number;
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
  completions: {
    create(request: CompletionRequest & { stream: true }): Promise<AsyncIterable<TextCompletion>>;
    create(request: CompletionRequest & { stream?: false }): Promise<TextCompletion>;
  };
  /** Token ids of `text`; special-token text is read as those tokens unless `parseSpecial` is false. */
  tokenize(text: string, options?: { parseSpecial?: boolean }): Promise<number[]>;
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
  /** One more run timing every kernel with timestamp queries (rejects where the adapter has
   *  no `timestamp-query`). */
  profile?: boolean;
}

/** GPU time of one kernel in one kind of pass: all of the prefill, or per decoded token (mean). */
export interface KernelTime {
  /** "prefill" or "decode". */
  pass: string;
  kernel: string;
  calls: number;
  ms: number;
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
  /** Sampled decoding (T 0.8, top-p 0.9) from the GPU's candidates, and reading the logits row. */
  sampled_decode_tok_s: number;
  sampled_row_decode_tok_s: number;
  ttft_s: number;
  load_s: number;
  compile_s: number;
  /** Of `compile_s`: the pipelines created by then, and the seconds spent creating them (in a
   *  browser only the JS-side cost: the GPU process compiles behind it). */
  pipelines: number;
  pipeline_s: number;
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
  /** With `profile`: GPU time per kernel, largest first. */
  profile?: KernelTime[];
}

export interface CachedModel {
  url: string;
  bytes: number;
  complete: boolean;
}

export declare function listCachedModels(): Promise<CachedModel[]>;
export declare function deleteCachedModel(url: string): Promise<boolean>;

/**
 * One model of the catalog (`models()`): small GGUF models of the supported architectures
 * (llama, qwen2, gemma3) in quantizations attend reads. `file_bytes` is approximate and the URLs
 * were written from the model cards (the catalog's tests cannot fetch them).
 */
export interface CatalogModel {
  name: string;
  /** GGUF `general.architecture`: "llama", "qwen2" or "gemma3". */
  architecture: string;
  /** llama.cpp's name of the file's quantization ("Q8_0", "Q4_K_M", ...). */
  quant: string;
  file_bytes: number;
  /** Context the model was trained for. */
  context: number;
  license: string;
  /** One URL, or a split GGUF's shards in order: pass it to `Engine.load` as it is. */
  urls: string[];
  layers: number;
  d_model: number;
  heads: number;
  kv_heads: number;
  head_dim: number;
  ffn_dim: number;
  vocab: number;
  tied_embeddings: boolean;
  sliding_window: number;
}

/** Options of `checkFit`, read as `Engine.load` reads them. */
export interface FitOptions {
  /** Context wanted (default: what `Engine.load` uses, 4096, capped at the trained context). */
  contextLength?: number;
  maxGpuBytes?: number;
  kvPrecision?: "f16" | "f32";
}

/** Whether a catalog model fits this browser's GPU adapter, before anything is downloaded. */
export interface ModelFit {
  name: string;
  fits: boolean;
  /** The context asked for (capped at the trained context). */
  requested_context: number;
  /** The largest context up to `requested_context` that fits (0 when it does not fit). */
  context: number;
  /** Estimated GPU bytes at `context` (weights + KV cache + activations). */
  gpu_bytes: number;
  weights_bytes: number;
  kv_cache_bytes: number;
  scratch_bytes: number;
  /** Why `requested_context` does not fit; null when it does. */
  reason: string | null;
}

/** The model catalog. */
export declare function models(): Promise<CatalogModel[]>;
/**
 * Checks catalog model `name` against this browser's adapter limits (and `maxGpuBytes`): fits,
 * and the largest context that does. Load it with `Engine.load(model.urls, { contextLength })`.
 */
export declare function checkFit(name: string, options?: FitOptions): Promise<ModelFit>;

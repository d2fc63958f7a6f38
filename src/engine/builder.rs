//! Push-style loading ([`EngineBuilder`]): the header first, then tensor bytes as they arrive.

use super::*;

/// Push-style loading: the header first, then tensor bytes as they arrive (a download stream in
/// the browser, file reads natively). Every GPU buffer is allocated in `new`, so a model that does
/// not fit or uses an unsupported type fails before any download time is spent on its weights.
pub struct EngineBuilder {
    gpu: Gpu,
    loader: crate::model::Loader,
    cfg: crate::model::Config,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    header: Gguf,
    opts: LoadOptions,
    context: u32,
    budget: crate::model::budget::Budget,
}

impl EngineBuilder {
    /// Everything that can be checked from the header is checked here, before a weight byte is
    /// read: hyperparameters, GPU sizes against the adapter, tensor shapes and types, the
    /// tokenizer and the chat template.
    pub fn new(gpu: Gpu, header: Gguf, opts: LoadOptions) -> Result<EngineBuilder> {
        // The architecture and tensors first: they give the most specific errors.
        let cfg = crate::model::Config::from_gguf(&header)?;
        let context = opts.context.map_or(cfg.train_ctx, |c| c.min(cfg.train_ctx));
        let budget = crate::model::budget::check(&cfg, &header, context, &opts, gpu.caps())?;
        let loader = Model::plan(&gpu, &header, &cfg)?;
        let tokenizer = Tokenizer::from_gguf(&header)?;
        let template = ChatTemplate::from_gguf(&header)?;
        Ok(EngineBuilder {
            gpu,
            loader,
            cfg,
            tokenizer,
            template,
            header,
            opts,
            context,
            budget,
        })
    }

    /// GPU bytes the model will take, estimated from the header.
    pub fn budget(&self) -> crate::model::budget::Budget {
        self.budget
    }

    pub fn header(&self) -> &Gguf {
        &self.header
    }

    /// Bytes `offset..` of tensor `index` (pieces of a tensor in order; unused tensors skipped).
    pub fn feed(&mut self, index: usize, offset: u64, bytes: &[u8]) -> Result<()> {
        self.gpu.check_lost()?;
        self.loader.feed(&self.gpu, index, offset, bytes)
    }

    pub fn bytes_done(&self) -> u64 {
        self.loader.bytes_done
    }
    pub fn bytes_total(&self) -> u64 {
        self.loader.bytes_total
    }

    pub fn finish(mut self) -> Result<Engine> {
        self.gpu.check_lost()?;
        let weights = Weights::assemble(&self.gpu, &self.cfg, &mut self.loader)?;
        let (gpu, cfg) = (self.gpu, self.cfg);
        let model = Model::new(
            &gpu,
            cfg,
            weights,
            self.context,
            self.opts.batch,
            self.opts.logit_rows,
            self.opts.kv,
        )?;
        let (tokenizer, template) = (std::sync::Arc::new(self.tokenizer), self.template);
        gpu.wait();
        let name = match self.header.get("general.name").and_then(|v| v.as_str()) {
            Some(n) => n.to_string(),
            None => "model".to_string(),
        };
        Ok(Engine {
            name,
            compile: CompileStats::default(),
            tokenizer,
            template,
            header: self.header,
            cached: Vec::new(),
            pass_stats: Default::default(),
            passes: Passes::new(&gpu, &model),
            pipeline: cfg!(target_arch = "wasm32") || gpu.adapter.device_type != "Cpu",
            gpu_sampling: true,
            gpu,
            model,
        })
    }
}

//! `attend`: the native command line — list adapters, inspect and run GGUF models.

#[cfg(target_arch = "wasm32")]
fn main() {} // the CLI is native only; the browser uses the wasm-bindgen API

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::process::ExitCode;

    fn usage() -> &'static str {
        "usage: attend <command>\n\ncommands:\n  adapters    list GPU adapters with their features and limits\n"
    }

    pub fn main() -> ExitCode {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let result = match args.first().map(String::as_str) {
            Some("adapters") => adapters(),
            Some("-h") | Some("--help") | Some("help") => {
                print!("{}", usage());
                Ok(())
            }
            Some(other) => Err(attend::Error::Invalid(format!(
                "unknown command '{other}'\n{}",
                usage()
            ))),
            None => Err(attend::Error::Invalid(usage().to_string())),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("attend: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn adapters() -> attend::Result<()> {
        let list = pollster::block_on(attend::gpu::list_adapters());
        if list.is_empty() {
            return Err(attend::Error::NoAdapter(
            "no Vulkan/Metal/DX12/GL adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)".into(),
        ));
        }
        for (i, a) in list.iter().enumerate() {
            println!("[{i}] {a}");
        }
        Ok(())
    }
}

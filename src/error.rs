//! One error type for the whole runtime: every failure a user can cause (bad file, missing GPU
//! feature, too-long prompt) ends up here with a message that names the cause.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no WebGPU adapter found: {0}")]
    NoAdapter(String),
    #[error("could not open the GPU device: {0}")]
    Device(String),
    #[error("the GPU lacks something this needs: {0}")]
    Unsupported(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("invalid GGUF file: {0}")]
    Gguf(String),
    #[error("unsupported model: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Invalid(String),
    /// A request field with a value attend cannot honour (HTTP 400 in OpenAI's API): `param`
    /// names the field, `message` says what is wrong with it (and names it too).
    #[error("invalid request: {message}")]
    BadRequest { param: String, message: String },
    #[error("I/O: {0}")]
    Io(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl Error {
    /// A [`Error::BadRequest`] about `param`.
    pub fn bad_request(param: &str, message: impl Into<String>) -> Error {
        Error::BadRequest {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

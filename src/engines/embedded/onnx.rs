//! ONNX Runtime, loaded once per process from the shared library `scripts/setup.sh` installs.
//!
//! The `ort` crate is built with `load-dynamic`, so nothing is downloaded at build time; the library
//! (`models/lib/libonnxruntime.so.*`, from the PyPI `onnxruntime` wheel) is opened at start-up.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::ModelError;

static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading `library` on first use. Later calls return the
/// same environment whatever path they give (a process has one runtime).
pub fn runtime(library: &Path) -> Result<&'static Environment, ModelError> {
    let loaded = RUNTIME.get_or_init(|| {
        if !library.is_file() {
            return Err(format!("not found at {}", library.display()));
        }
        ort::init_from(library)
            .map_err(|error| error.to_string())?
            .with_name("phone-agent")
            .build()
            .map_err(|error| error.to_string())
    });
    loaded.as_ref().map_err(|message| ModelError::Runtime {
        path: library.to_owned(),
        message: message.clone(),
    })
}

/// Opens `model` as a single-threaded session: each worker runs one inference at a time on its own
/// core, which keeps every call's latency predictable under load.
pub fn session(env: &Environment, what: &'static str, model: &Path) -> Result<Session, ModelError> {
    require_file(what, model)?;
    let failed = |message: String| ModelError::Load {
        what,
        path: model.to_owned(),
        message,
    };
    let builder = Session::builder(env).map_err(|error| failed(error.to_string()))?;
    let builder = builder
        .with_intra_threads(1)
        .map_err(|error| failed(error.to_string()))?;
    let builder = builder
        .with_inter_threads(1)
        .map_err(|error| failed(error.to_string()))?;
    let mut builder = builder
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|error| failed(error.to_string()))?;
    builder
        .commit_from_file(model)
        .map_err(|error| failed(error.to_string()))
}

/// Checks that a model file exists, naming it and the fix when it does not.
pub fn require_file(what: &'static str, path: &Path) -> Result<PathBuf, ModelError> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(ModelError::Missing {
            what,
            path: path.to_owned(),
        })
    }
}

/// Turns an inference error into a message (ort's errors carry no secrets).
pub fn run_error(error: ort::Error) -> String {
    error.to_string()
}

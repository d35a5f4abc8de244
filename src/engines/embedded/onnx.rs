//! ONNX Runtime, loaded once per process from the shared library `scripts/setup.sh` installs.
//!
//! The `ort` crate is built with `load-dynamic`, so nothing is downloaded at build time; the library
//! (`models/lib/libonnxruntime.so.*`, from the PyPI `onnxruntime` wheel) is opened at start-up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
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
    single_threaded(env)
        .and_then(|mut builder| builder.commit_from_file(model))
        .map_err(|error| load_failed(what, model, error))
}

/// Opens `model` like [`session`], from its constant-folded copy (made by [`fold`] on first use):
/// the weights are read from a file the kernel maps, so every worker's session shares one copy of
/// them in memory, and they are used in place (no prepacked copy per session). A copy that cannot
/// be made (a read-only models directory) is warned about, and `model` is opened as it is.
pub fn folded_session(
    env: &Environment,
    what: &'static str,
    model: &Path,
) -> Result<Session, ModelError> {
    let folded = match fold(env, what, model) {
        Ok(folded) => folded,
        Err(ModelError::Load { message, path, .. }) => {
            tracing::warn!(
                %message,
                path = %path.display(),
                "{what}: no folded copy, so each worker holds its own weights"
            );
            return session(env, what, model);
        }
        Err(error) => return Err(error),
    };
    single_threaded(env)
        .and_then(|builder| builder.with_prepacking(false).map_err(Into::into))
        .and_then(|mut builder| builder.commit_from_file(&folded))
        .map_err(|error| load_failed(what, &folded, error))
}

/// Where [`fold`] keeps the folded copy of `model`: `folded/` beside it.
pub fn folded_path(model: &Path) -> PathBuf {
    let name = model.file_name().unwrap_or_default();
    model.with_file_name("folded").join(name)
}

/// Makes, unless it is there and made from this very file, the constant-folded copy of `model`
/// ([`folded_path`]): ONNX Runtime's basic optimisations computed once and saved, the graph in
/// `NAME.onnx` and its weights in `NAME.onnx.data`.
pub fn fold(env: &Environment, what: &'static str, model: &Path) -> Result<PathBuf, ModelError> {
    require_file(what, model)?;
    let folded = folded_path(model);
    let stamp = folded.with_extension("source");
    let source = source_stamp(model).map_err(|error| load_failed(what, model, error))?;
    if folded.is_file() && std::fs::read_to_string(&stamp).ok().as_ref() == Some(&source) {
        return Ok(folded);
    }
    let dir = folded.parent().unwrap_or(Path::new("."));
    // Unique to this fold: threads of one process (a test runner) may fold the same model at once.
    static FOLDS: AtomicU64 = AtomicU64::new(0);
    let fold_number = FOLDS.fetch_add(1, Ordering::Relaxed);
    let scratch = dir.join(format!(".folding-{}-{fold_number}", std::process::id()));
    let written = write_folded(env, model, &scratch, &folded, &source);
    let _ = std::fs::remove_dir_all(&scratch);
    written.map_err(|message| load_failed(what, &folded, message))?;
    Ok(folded)
}

/// Folds `model` into `scratch`, then renames each file into place beside `folded`, the stamp
/// naming the source last: a process loading while another folds finds either no stamp or whole
/// files (both write the same bytes).
fn write_folded(
    env: &Environment,
    model: &Path,
    scratch: &Path,
    folded: &Path,
    source: &str,
) -> Result<(), String> {
    let name = folded
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let data = format!("{name}.data");
    std::fs::create_dir_all(scratch).map_err(|error| error.to_string())?;
    Session::builder(env)
        .and_then(|builder| Ok(builder.with_optimization_level(GraphOptimizationLevel::Level1)?))
        .and_then(|builder| Ok(builder.with_optimized_model_path(scratch.join(&name))?))
        .and_then(|builder| {
            Ok(builder.with_config_entry(
                "session.optimized_model_external_initializers_file_name",
                &data,
            )?)
        })
        .and_then(|builder| {
            Ok(builder.with_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes",
                "1024",
            )?)
        })
        .and_then(|mut builder| builder.commit_from_file(model))
        .map_err(|error| error.to_string())?;
    let stamp = folded.with_extension("source");
    std::fs::write(scratch.join("stamp"), source).map_err(|error| error.to_string())?;
    for (from, to) in [
        (scratch.join(&data), folded.with_file_name(&data)),
        (scratch.join(&name), folded.to_owned()),
        (scratch.join("stamp"), stamp),
    ] {
        std::fs::rename(from, to).map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// What identifies the file a folded copy was made from: its length and modification time.
fn source_stamp(model: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(model)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(format!("{} {}\n", meta.len(), modified.as_nanos()))
}

/// A session builder with one thread and every graph optimisation.
fn single_threaded(env: &Environment) -> ort::Result<SessionBuilder> {
    Ok(Session::builder(env)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?)
}

fn load_failed(what: &'static str, path: &Path, error: impl ToString) -> ModelError {
    ModelError::Load {
        what,
        path: path.to_owned(),
        message: error.to_string(),
    }
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

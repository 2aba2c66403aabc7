//! The sampling defaults of a checkpoint's `generation_config.json`, read from beside its
//! `config.json`: vLLM applies them to every request that sets none.

use std::path::Path;

use super::fields::{json_object, Fields};
use crate::catalog::{CatalogError, GenerationDefaults};

/// The file vLLM reads the defaults from, beside `config.json`.
pub(super) const FILE_NAME: &str = "generation_config.json";

/// The defaults in the `generation_config.json` beside `config`, or `None` when there is no such
/// file or it sets none of `temperature`, `top_p`, `top_k` and `repetition_penalty`.
pub(super) fn read_beside(config: &Path) -> Result<Option<GenerationDefaults>, CatalogError> {
    let path = config.with_file_name(FILE_NAME);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| CatalogError::Io {
        path: path.clone(),
        source: e,
    })?;
    parse(&text, &path)
}

/// Reads the text of a `generation_config.json`; `path` names it in errors and in `source`.
pub(super) fn parse(text: &str, path: &Path) -> Result<Option<GenerationDefaults>, CatalogError> {
    let map = json_object(text, path)?;
    let f = Fields::of_file(&map, path, format!("the {FILE_NAME} beside a config.json"));
    let g = GenerationDefaults {
        temperature: f.opt_f64("temperature")?,
        top_p: f.opt_f64("top_p")?,
        top_k: f.opt_u32("top_k")?,
        repetition_penalty: f.opt_f64("repetition_penalty")?,
        source: path.display().to_string(),
    };
    if g.temperature.is_none()
        && g.top_p.is_none()
        && g.top_k.is_none()
        && g.repetition_penalty.is_none()
    {
        return Ok(None);
    }
    g.validate().map_err(|why| CatalogError::Parse {
        path: path.to_path_buf(),
        why,
    })?;
    Ok(Some(g))
}

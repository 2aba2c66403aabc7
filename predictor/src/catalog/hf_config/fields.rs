//! Typed access to the fields of one JSON object of a `config.json` (the top level, `text_config`,
//! `vision_config`, `quantization_config`), each error naming the file and the field's full path.

use std::fmt::Display;
use std::path::Path;

use serde_json::{Map, Number, Value};

use crate::catalog::CatalogError;

/// The top-level object of the JSON `text` of the file at `path`; an error naming the file when
/// the text is not JSON or not an object.
pub(super) fn json_object(text: &str, path: &Path) -> Result<Map<String, Value>, CatalogError> {
    let parse_err = |why: String| CatalogError::Parse {
        path: path.to_path_buf(),
        why,
    };
    match serde_json::from_str(text).map_err(|e| parse_err(format!("not valid JSON: {e}")))? {
        Value::Object(map) => Ok(map),
        _ => Err(parse_err("not a JSON object".into())),
    }
}

/// One object of a `config.json`, with where it sits (for error messages).
#[derive(Clone)]
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Dotted path of this object inside the file (`""` at the top level, `"text_config."`).
    prefix: String,
    path: &'a Path,
    /// What is being read, for error messages (`a LlamaForCausalLM config.json`).
    what: String,
}

impl<'a> Fields<'a> {
    /// The top-level object of the `config.json` at `path`, read as architecture `arch`.
    pub(super) fn new(map: &'a Map<String, Value>, path: &'a Path, arch: &'a str) -> Self {
        Self::of_file(map, path, format!("a {arch} config.json"))
    }

    /// The top-level object of the file at `path`, described as `what` in errors.
    pub(super) fn of_file(map: &'a Map<String, Value>, path: &'a Path, what: String) -> Self {
        Fields {
            map,
            prefix: String::new(),
            path,
            what,
        }
    }

    /// The file being read.
    pub(super) fn path(&self) -> &'a Path {
        self.path
    }

    /// An error about field `key` of this object: "`<file>`: field `<prefix><key>` <problem>".
    pub(super) fn err(&self, key: &str, problem: impl Display) -> CatalogError {
        CatalogError::Parse {
            path: self.path.to_path_buf(),
            why: format!(
                "field `{}{key}` {problem} (reading {})",
                self.prefix, self.what
            ),
        }
    }

    /// Whether the object has `key` at all (even as `null`).
    pub(super) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key`; an explicit `null` counts as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A nested object (`text_config`), absent when missing or `null`.
    pub(super) fn object(&self, key: &str) -> Result<Option<Fields<'a>>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                map,
                prefix: format!("{}{key}.", self.prefix),
                path: self.path,
                what: self.what.clone(),
            })),
            Some(other) => Err(self.err(key, format!("= {other} is not an object"))),
        }
    }

    /// A nested object that must be present.
    pub(super) fn required_object(&self, key: &str) -> Result<Fields<'a>, CatalogError> {
        self.object(key)?
            .ok_or_else(|| self.err(key, "is missing; this architecture keeps its sizes there"))
    }

    fn number_to_u32(&self, key: &str, n: &Number) -> Result<u32, CatalogError> {
        if let Some(u) = n.as_u64() {
            return u32::try_from(u).map_err(|_| {
                self.err(
                    key,
                    format!(
                        "= {u} is larger than {} (sizes must fit in 32 bits)",
                        u32::MAX
                    ),
                )
            });
        }
        if n.as_i64().is_some() {
            return Err(self.err(key, format!("= {n} is negative")));
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f > 0.0 => Err(self.err(
                key,
                format!(
                    "= {n} is larger than {} (sizes must fit in 32 bits)",
                    u32::MAX
                ),
            )),
            _ => Err(self.err(key, format!("= {n} is not a whole number"))),
        }
    }

    fn value_to_u32(&self, key: &str, v: &Value) -> Result<u32, CatalogError> {
        match v {
            Value::Number(n) => self.number_to_u32(key, n),
            other => Err(self.err(key, format!("= {other} is not a number"))),
        }
    }

    /// A non-negative integer that fits in 32 bits, if present.
    pub(super) fn opt_u32(&self, key: &str) -> Result<Option<u32>, CatalogError> {
        self.get(key).map(|v| self.value_to_u32(key, v)).transpose()
    }

    /// A positive integer that fits in 32 bits, if present.
    pub(super) fn opt_size(&self, key: &str) -> Result<Option<u32>, CatalogError> {
        match self.opt_u32(key)? {
            Some(0) => Err(self.err(key, "is 0; it must be positive")),
            v => Ok(v),
        }
    }

    /// A positive integer that fits in 32 bits, which must be present.
    pub(super) fn size(&self, key: &str) -> Result<u32, CatalogError> {
        self.opt_size(key)?
            .ok_or_else(|| self.err(key, "is missing; this architecture needs it"))
    }

    /// A boolean, if present.
    pub(super) fn opt_bool(&self, key: &str) -> Result<Option<bool>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(key, format!("= {other} is not true or false"))),
        }
    }

    /// A finite number, if present.
    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(self.err(key, format!("= {n} is not a finite number"))),
            },
            Some(other) => Err(self.err(key, format!("= {other} is not a number"))),
        }
    }

    /// A string, if present.
    pub(super) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(key, format!("= {other} is not a string"))),
        }
    }

    /// A list of non-negative integers, if present.
    pub(super) fn opt_u32_list(&self, key: &str) -> Result<Option<Vec<u32>>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| self.value_to_u32(key, v))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(key, format!("= {other} is not a list of numbers"))),
        }
    }

    /// A list of strings, if present.
    pub(super) fn opt_str_list(&self, key: &str) -> Result<Option<Vec<&'a str>>, CatalogError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| self.err(key, format!("holds {v}, which is not a string")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(key, format!("= {other} is not a list of strings"))),
        }
    }

    /// The keys of this object (`config_groups` names its groups), in name order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &'a String> {
        self.map.keys()
    }
}

//! Parameters of the vision tower of a multimodal checkpoint, counted from its `vision_config`
//! (they are loaded and held in GPU memory, but not modelled per token).

use super::fields::Fields;
use crate::catalog::model::MAX_TOTAL_PARAMS;
use crate::catalog::CatalogError;

/// Parameters of Llama-4's vision encoder, pixel-shuffle adapter and multimodal projector, from
/// `vision_config` and the text model's `text_hidden` width:
///
/// - patch embedding: `num_channels · patch_size² · hidden_size` (no bias);
/// - class token `hidden_size` and positional embedding `((image_size / patch_size)² + 1) · hidden_size`;
/// - pre and post LayerNorms: `2 · 2 · hidden_size`;
/// - `num_hidden_layers` encoder layers: Q, K, V, O with bias `4 · (hidden_size² + hidden_size)`,
///   MLP with bias `2 · hidden_size · intermediate_size + intermediate_size + hidden_size`, two
///   LayerNorms `2 · 2 · hidden_size`;
/// - adapter MLP: `intermediate_size · projector_input_dim + projector_output_dim²` (no bias);
/// - projector to the text width: `vision_output_dim · text_hidden`, plus `text_hidden` with
///   `multi_modal_projector_bias`.
pub(super) fn llama4_vision_params(v: &Fields, text_hidden: u32) -> Result<u64, CatalogError> {
    let size = |key: &str| v.size(key).map(u128::from);
    let (h, ff, layers) = (
        size("hidden_size")?,
        size("intermediate_size")?,
        size("num_hidden_layers")?,
    );
    let (patch, image) = (size("patch_size")?, size("image_size")?);
    let channels = u128::from(v.opt_size("num_channels")?.unwrap_or(3));
    let (proj_in, proj_out, out) = (
        size("projector_input_dim")?,
        size("projector_output_dim")?,
        size("vision_output_dim")?,
    );
    let projector_bias = v.opt_bool("multi_modal_projector_bias")?.unwrap_or(false);
    let t = u128::from(text_hidden);
    let side = image / patch;
    // Each term is a product of at most four 32-bit sizes with a small factor, so it fits in 128
    // bits; the sum saturates rather than wraps, and anything that large is refused below.
    let terms = [
        channels * patch * patch * h,
        h + 4 * h,
        (side * side + 1) * h,
        layers * (4 * (h * h + h) + 4 * h + ff + h),
        layers * 2 * h * ff,
        ff * proj_in,
        proj_out * proj_out,
        out * t,
        if projector_bias { t } else { 0 },
    ];
    let total = terms.iter().fold(0u128, |a, &b| a.saturating_add(b));
    match u64::try_from(total) {
        Ok(n) if n <= MAX_TOTAL_PARAMS => Ok(n),
        _ => Err(v.err(
            "hidden_size",
            format!("and the other vision sizes give {total} parameters; check the sizes"),
        )),
    }
}

//! Per-layer patterns of a `config.json` (which layers are MoE, which attend locally) turned into
//! the compact rules of [`MoeSpec`](crate::catalog::MoeSpec) and
//! [`LocalAttention`](crate::catalog::LocalAttention), checked layer by layer so that a pattern the
//! rules cannot express is an error rather than an approximation.

/// Layer numbers (0-based) of the set flags, for error messages (the first few, then a count).
fn describe(flags: &[bool]) -> String {
    let on: Vec<String> = flags
        .iter()
        .enumerate()
        .filter(|(_, &f)| f)
        .map(|(l, _)| l.to_string())
        .collect();
    match on.len() {
        0 => "none".into(),
        n if n <= 8 => on.join(", "),
        n => format!("{}, … ({n} layers)", on[..6].join(", ")),
    }
}

/// The `(first_dense_layers, layer_step)` under which exactly the layers flagged in `moe` are MoE
/// (the rule of `ModelSpec::is_moe_layer`: layer `l` is MoE when `l >= k` and `(l + 1 - k)` is a
/// multiple of `s`), or why no such pair exists.
pub(super) fn fit_moe_layers(moe: &[bool]) -> Result<(u32, u32), String> {
    let on: Vec<usize> = (0..moe.len()).filter(|&l| moe[l]).collect();
    let Some(&first) = on.first() else {
        return Err("gives no MoE layer".into());
    };
    // The first MoE layer is k + s - 1; the step is the gap to the next one (or, with a single MoE
    // layer, the smallest step that puts the following one past the end).
    let step = match on.get(1) {
        Some(&second) => second - first,
        None => moe.len() - first,
    };
    let fits = step >= 1 && first + 1 >= step && {
        let k = first + 1 - step;
        (0..moe.len()).all(|l| moe[l] == (l >= k && (l + 1 - k).is_multiple_of(step)))
    };
    if fits {
        Ok(((first + 1 - step) as u32, step as u32))
    } else {
        Err(format!(
            "gives MoE layers {}: not some first dense layers followed by every n-th layer MoE, \
             the pattern servesim models",
            describe(moe)
        ))
    }
}

/// The `global_every` under which exactly the layers flagged in `local` attend locally (the rule
/// of `ModelSpec::is_local_attention_layer`: every layer is local when it is 0, else layer `l` is
/// global when `l + 1` is a multiple of it), `None` when no layer is local, or why no such value
/// exists.
pub(super) fn fit_local_layers(local: &[bool]) -> Result<Option<u32>, String> {
    if !local.contains(&true) {
        return Ok(None);
    }
    let Some(first_global) = local.iter().position(|&l| !l) else {
        return Ok(Some(0));
    };
    let every = first_global + 1;
    if (0..local.len()).all(|l| local[l] != (l + 1).is_multiple_of(every)) {
        Ok(Some(every as u32))
    } else {
        Err(format!(
            "gives locally attending layers {}: neither all layers nor all but every n-th, \
             the patterns servesim models",
            describe(local)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(n: usize, f: impl Fn(usize) -> bool) -> Vec<bool> {
        (0..n).map(f).collect()
    }

    #[test]
    fn moe_patterns_fit_or_are_refused() {
        assert_eq!(fit_moe_layers(&flags(8, |_| true)), Ok((0, 1)));
        // DeepSeek-V3: three dense layers, then every layer.
        assert_eq!(fit_moe_layers(&flags(61, |l| l >= 3)), Ok((3, 1)));
        // Llama-4 Maverick: interleave step 2 (layers 1, 3, 5, ...).
        assert_eq!(fit_moe_layers(&flags(48, |l| l % 2 == 1)), Ok((0, 2)));
        // First dense layers and a step together.
        assert_eq!(
            fit_moe_layers(&flags(12, |l| l >= 2 && (l - 1) % 3 == 0)),
            Ok((2, 3))
        );
        // A single MoE layer at the end, or one that no step reaches.
        assert_eq!(fit_moe_layers(&flags(4, |l| l == 3)), Ok((3, 1)));
        assert!(fit_moe_layers(&flags(6, |l| l == 1)).is_err());
        // Dense layers in the middle (Qwen3-MoE mlp_only_layers = [4]).
        let e = fit_moe_layers(&flags(8, |l| l != 4)).unwrap_err();
        assert!(e.contains("0, 1, 2, 3, 5, 6, 7"), "{e}");
        assert!(fit_moe_layers(&flags(8, |_| false)).is_err());
    }

    #[test]
    fn local_patterns_fit_or_are_refused() {
        assert_eq!(fit_local_layers(&flags(8, |_| false)), Ok(None));
        assert_eq!(fit_local_layers(&flags(8, |_| true)), Ok(Some(0)));
        // Llama-4: every fourth layer global.
        assert_eq!(
            fit_local_layers(&flags(48, |l| (l + 1) % 4 != 0)),
            Ok(Some(4))
        );
        // Qwen2 with max_window_layers = 4 of 8: global first, local after.
        let e = fit_local_layers(&flags(8, |l| l >= 4)).unwrap_err();
        assert!(e.contains("4, 5, 6, 7"), "{e}");
    }
}

use super::*;

fn bf(v: &[f32]) -> Vec<bf16> {
    to_bf16(v)
}

fn close(got: &[bf16], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let g = g.to_f32();
        assert!(
            (g - w).abs() <= 1e-2 * w.abs().max(1e-3),
            "got {g}, want {w}"
        );
    }
}

#[test]
fn rms_norm_of_3_4_0_0_is_1_2_1_6() {
    // mean of squares 25/4 -> rms 2.5
    let out = rms_norm(
        &bf(&[3.0, 4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]),
        &bf(&[1.0, 1.0, 2.0, 0.5]),
        4,
        0.0,
    );
    close(&out, &[1.2, 1.6, 0.0, 0.0, 1.0, 1.0, 2.0, 0.5]);
}

#[test]
fn fused_add_rms_norm_updates_the_residual_and_normalises_it() {
    let mut x = bf(&[1.0, 1.0, 1.0, 1.0]);
    let mut res = bf(&[2.0, 3.0, -1.0, -1.0]);
    fused_add_rms_norm(&mut x, &mut res, &bf(&[1.0; 4]), 4, 0.0);
    close(&res, &[3.0, 4.0, 0.0, 0.0]);
    close(&x, &[1.2, 1.6, 0.0, 0.0]);
}

#[test]
fn rotary_rotates_half_pairs_by_position_times_frequency() {
    // d = 4, theta = 10000: frequencies 1 and 0.01
    let cs = cos_sin_cache(2, 4, 10000.0);
    assert_eq!(&cs[0..4], &[1.0, 1.0, 0.0, 0.0]);
    assert!((cs[4] - 1f32.cos()).abs() < 1e-7 && (cs[7] - 0.01f32.sin()).abs() < 1e-7);
    // two tokens (positions 0 and 1), one head, stride 4
    let mut qkv = bf(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    rotary_neox(&mut qkv, &[0, 1], &cs, 1, 4, 4);
    close(
        &qkv,
        &[1.0, 0.0, 0.0, 0.0, 1f32.cos(), 0.0, 1f32.sin(), 0.0],
    );
}

#[test]
fn silu_and_mul_multiplies_silu_of_gate_by_up() {
    // rows [g0 g1 | u0 u1]; silu(1) = 0.7310586 (0.73046875 in bf16), silu(-1) = -0.2689414
    let out = silu_and_mul(&bf(&[1.0, -1.0, 2.0, 1.0, 0.0, 4.0, 5.0, 6.0]), 2);
    close(
        &out,
        &[1.4609375, -0.2689414, 0.0, 24.0 / (1.0 + (-4f32).exp())],
    );
}

#[test]
fn residual_add_adds() {
    close(
        &residual_add(&bf(&[1.0, 0.5]), &bf(&[2.0, 0.25])),
        &[3.0, 0.75],
    );
}

#[test]
fn reshape_and_cache_writes_each_token_to_its_slot_and_skips_negative_slots() {
    // kv_width 2, stride 3 (one extra value per row that must not be copied)
    let k = bf(&[1.0, 2.0, 99.0, 3.0, 4.0, 99.0, 5.0, 6.0, 99.0]);
    let v = bf(&[-1.0, -2.0, 99.0, -3.0, -4.0, 99.0, -5.0, -6.0, 99.0]);
    let mut kc = vec![bf16::from_f32(7.0); 8];
    let mut vc = kc.clone();
    reshape_and_cache(&k, &v, &mut kc, &mut vc, &[3, -1, 0], 2, 3);
    close(&kc, &[5.0, 6.0, 7.0, 7.0, 7.0, 7.0, 1.0, 2.0]);
    close(&vc, &[-5.0, -6.0, 7.0, 7.0, 7.0, 7.0, -1.0, -2.0]);
}

#[test]
fn embedding_gathers_rows_of_the_shard_and_zeroes_the_rest() {
    let table = bf(&[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]); // 4 rows of width 2 for ids 4..8
    let out = embedding(&[5, 1, 7, 9], &table, 2, 4, 8);
    close(&out, &[1.0, 1.5, 0.0, 0.0, 3.0, 3.5, 0.0, 0.0]);
}

#[test]
fn gemm_tn_multiplies_by_the_transposed_weight() {
    let y = gemm_tn(&bf(&[1.0, 2.0]), &bf(&[3.0, 4.0, 5.0, 6.0]), 1, 2, 2);
    assert_eq!(y, vec![11.0, 17.0]);
}

#[test]
fn relative_l2_error() {
    assert_eq!(rel_l2(&[3.0, 4.0], &[3.0, 4.0]), 0.0);
    assert!((rel_l2(&[3.0, 4.5], &[3.0, 4.0]) - 0.1).abs() < 1e-12);
    assert!(rel_l2(&[f32::NAN], &[1.0]).is_infinite());
    assert!(rel_l2(&[1.0], &[0.0]).is_infinite());
}

#[test]
fn bf16_rounding_is_round_to_nearest_even() {
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0)
    assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
    assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
}

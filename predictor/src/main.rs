//! `predictor`: fit operator models to profiles and report their held-out accuracy; predict one batch.

fn main() {
    use predictor::fit::{accuracy::accuracy, case::*, select::SearchConfig};
    let args: Vec<String> = std::env::args().collect();
    let cat = predictor::Catalog::builtin();
    let model = cat.model(&args[2]).unwrap();
    let node = args.get(4).map(|n| cat.node(n).unwrap());
    let inputs = CaseInputs::load(
        &[args[1].clone().into()],
        &model,
        &args[3],
        node.as_ref(),
        None,
    )
    .unwrap();
    let ds = inputs.datasets().unwrap();
    let mut cfg = SearchConfig::default();
    if let Ok(c) = std::env::var("CRIT") {
        cfg.criterion = serde_json::from_str(&format!("\"{c}\"")).unwrap();
    }
    if std::env::var("NOXGB").is_ok() {
        cfg.boost_1d = false;
    }
    let t = std::time::Instant::now();
    let seed: u64 = std::env::var("SEED")
        .map(|s| s.parse().unwrap())
        .unwrap_or(0);
    let rep = accuracy(&ds, &cfg, 5, seed).unwrap();
    eprintln!("cv {:.2}s", t.elapsed().as_secs_f64());
    print!("{}", rep.table());
    let t = std::time::Instant::now();
    let f = fit_case(&inputs, &cfg).unwrap();
    eprintln!("fit {:.2}s", t.elapsed().as_secs_f64());
    for o in &f.ops {
        println!("{} {}", o.key, o.chosen);
    }
}

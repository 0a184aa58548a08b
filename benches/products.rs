//! Matrix-product throughput of the fused CPU path's kernels: f32 through `gemm` and bf16 on
//! every kernel family this CPU has, on square products (default 2048) and on the shapes of a
//! BERT-base step (tokens x 768 x 768, tokens x 3072 x 768), with their fraction of the AMX
//! limit (1,024 bf16 FLOP per cycle per core).
//!
//!     cargo bench --bench products                  # 2048 and the BERT-base shapes
//!     NERGRID_BENCH_SIZES=512,1024 cargo bench --bench products
//!
//! Settings (environment): NERGRID_BENCH_SIZES (square sizes), NERGRID_BENCH_TOKENS (rows of
//! the BERT-base shapes, default 512), NERGRID_BENCH_GHZ (the clock for the AMX limit; default
//! the `cpu MHz` of /proc/cpuinfo).

use nergrid::model::bf16::Family;
use nergrid::model::kernels::{matmul, Products, View};
use std::time::Instant;

fn main() {
    let sizes: Vec<usize> = std::env::var("NERGRID_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2048]);
    let tokens = std::env::var("NERGRID_BENCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let cores = rayon::current_num_threads();
    let ghz = clock_ghz();
    let limit = 1024.0 * ghz * cores as f64;
    // The limit only means something where AMX runs (an AMD EPYC has AVX512-BF16 but no AMX).
    let amx = Family::available().contains(&Family::Amx);
    match amx {
        true => println!("threads {cores}, clock {ghz:.2} GHz: AMX limit {limit:.0} GFLOP/s (bf16)"),
        false => println!("threads {cores}: this CPU has no AMX tiles (or Linux did not grant them): no AMX limit"),
    }
    let mut shapes: Vec<(usize, usize, usize, &str)> = sizes.iter().map(|&s| (s, s, s, "square")).collect();
    shapes.push((tokens, 768, 768, "x·Wᵀ 768"));
    shapes.push((tokens, 3072, 768, "x·Wᵀ 3072"));
    shapes.push((768, 768, tokens, "dW = dyᵀ·x"));
    let mut kinds = vec![("f32", Products::F32)];
    kinds.extend(Family::available().into_iter().map(|f| (f.name(), Products::Bf16(f))));
    println!("{:<12} {:>6} {:>6} {:>6} {:<10} {:>10} {:>8}", "shape", "m", "n", "k", "kernels", "GFLOP/s", "of AMX");
    for &(m, n, k, name) in &shapes {
        for &(kind, products) in &kinds {
            let rate = gflops(products, m, n, k);
            let share = if amx { format!("{:.1}%", 100.0 * rate / limit) } else { "-".to_string() };
            println!("{name:<12} {m:>6} {n:>6} {k:>6} {kind:<10} {rate:>10.1} {share:>8}");
        }
    }
}

/// Best of a few timed products (after one warm-up), in GFLOP/s.
fn gflops(products: Products, m: usize, n: usize, k: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729 % 1000) as f32 - 500.0) * 1e-3).collect();
    let mut c = vec![0.0f32; m * n];
    let run = |c: &mut [f32]| matmul(products, c, n, View::new(&a, m, k), View::new(&w, n, k).t(), false);
    run(&mut c);
    let flop = 2.0 * (m * n * k) as f64;
    let repeats = ((2e10 / flop) as usize).clamp(1, 50);
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let started = Instant::now();
        run(&mut c);
        best = best.min(started.elapsed().as_secs_f64());
    }
    flop / best / 1e9
}

fn clock_ghz() -> f64 {
    if let Some(ghz) = std::env::var("NERGRID_BENCH_GHZ").ok().and_then(|v| v.parse().ok()) {
        return ghz;
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(2.0, |mhz| mhz / 1000.0)
}

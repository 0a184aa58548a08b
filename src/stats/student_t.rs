//! Student's t distribution: the CDF through the regularized incomplete beta function, the
//! quantile by bisection on the CDF (accurate to ~1e-12, enough for any table).

use std::f64::consts::PI;

/// Lanczos approximation (g = 7, 9 terms), relative error below 1e-13 for x > 0.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let series: f64 = COEF[0] + (1..9).map(|i| COEF[i] / (x + i as f64)).sum::<f64>();
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// I_x(a, b), the regularized incomplete beta function, for a, b > 0 and x in [0, 1].
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The continued fraction converges fast only below the mean; use the symmetry above it.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction of I_x(a, b), evaluated with the modified Lentz method.
fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=1000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = upper_tail(t.abs(), df);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// P(T > t) for t >= 0.
fn upper_tail(t: f64, df: f64) -> f64 {
    0.5 * regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The p-quantile of Student's t with `df` > 0 degrees of freedom, for p in (0, 1).
/// `t_quantile(0.975, 4)` is the 2.776 of a two-sided 95% table.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile needs p in (0, 1) and df > 0, got p={p}, df={df}");
    let tail = p.min(1.0 - p);
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while upper_tail(hi, df) > tail {
        lo = hi;
        hi *= 2.0;
    }
    // upper_tail decreases in t: keep upper_tail(lo) >= tail >= upper_tail(hi).
    while hi - lo > 1e-13 * hi.max(1.0) {
        let mid = 0.5 * (lo + hi);
        if upper_tail(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = 0.5 * (lo + hi);
    if p < 0.5 {
        -t
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-sided tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2), 3 decimals.
    #[test]
    fn quantiles_match_printed_tables() {
        let table = [
            (0.975, 1.0, 12.706),
            (0.975, 2.0, 4.303),
            (0.975, 4.0, 2.776),
            (0.975, 9.0, 2.262),
            (0.975, 29.0, 2.045),
            (0.975, 100.0, 1.984),
            (0.95, 5.0, 2.015),
            (0.995, 10.0, 3.169),
            (0.999, 3.0, 10.215),
        ];
        for (p, df, want) in table {
            let got = t_quantile(p, df);
            assert!((got - want).abs() < 5e-4, "t({p}, {df}) = {got}, table says {want}");
            assert!((t_quantile(1.0 - p, df) + got).abs() < 1e-12, "symmetry at ({p}, {df})");
        }
    }

    /// df = 1 (Cauchy) and df = 2 have closed forms: an independent check to 1e-9.
    #[test]
    fn quantiles_match_closed_forms() {
        for p in [0.6, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.3, 0.01] {
            let cauchy = (PI * (p - 0.5)).tan();
            let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            assert!((t_quantile(p, 1.0) - cauchy).abs() < 1e-9 * cauchy.abs().max(1.0), "df=1, p={p}");
            assert!((t_quantile(p, 2.0) - two).abs() < 1e-9 * two.abs().max(1.0), "df=2, p={p}");
        }
    }

    #[test]
    fn cdf_matches_closed_forms_and_limits() {
        for t in [-3.0_f64, -0.5, 0.0, 0.7, 2.0, 12.706] {
            let cauchy = 0.5 + t.atan() / PI;
            assert!((t_cdf(t, 1.0) - cauchy).abs() < 1e-12, "df=1, t={t}");
            let two = 0.5 + t / (2.0 * (2.0 + t * t).sqrt());
            assert!((t_cdf(t, 2.0) - two).abs() < 1e-12, "df=2, t={t}");
        }
        // Large df approaches the normal: Phi(1.959964) = 0.975.
        assert!((t_cdf(1.959_964, 1e7) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn incomplete_beta_matches_closed_forms() {
        // I_x(1, b) = 1 - (1 - x)^b, I_x(a, 1) = x^a, I_x(a, b) + I_{1-x}(b, a) = 1.
        for x in [0.01, 0.2, 0.5, 0.77, 0.99] {
            assert!((regularized_incomplete_beta(x, 1.0, 3.5) - (1.0 - (1.0 - x).powf(3.5))).abs() < 1e-13);
            assert!((regularized_incomplete_beta(x, 2.5, 1.0) - x.powf(2.5)).abs() < 1e-13);
            let sum = regularized_incomplete_beta(x, 4.0, 0.5) + regularized_incomplete_beta(1.0 - x, 0.5, 4.0);
            assert!((sum - 1.0).abs() < 1e-13);
        }
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut factorial = 1.0_f64;
        for n in 1..20 {
            assert!((ln_gamma(f64::from(n)) - factorial.ln()).abs() < 1e-11, "ln Γ({n})");
            factorial *= f64::from(n);
        }
        assert!((ln_gamma(0.5) - PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(0.25) - 3.625_609_908_221_908_f64.ln()).abs() < 1e-12);
    }
}

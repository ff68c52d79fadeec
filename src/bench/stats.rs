//! What a benchmark's repeated rounds support: their median, and a 95 %
//! interval for it that assumes nothing about how the rounds are spread
//! (the machine's noise is neither normal nor symmetric).

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// The distribution-free 95 % confidence interval of the median: the k-th
/// smallest and k-th largest round, with k the largest for which fewer than
/// k of n rounds fall below the true median with probability ≤ 2.5 %
/// (binomial, p = ½). `None` under six rounds, where no such k exists.
pub fn median_interval(mut xs: Vec<f64>) -> Option<(f64, f64)> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    // P(X ≤ i) for X ~ Binomial(n, ½), term by term.
    let mut term = 0.5_f64.powi(i32::try_from(n).ok()?);
    let mut below = 0.0;
    let mut k = 0;
    while k < n {
        below += term;
        if below > 0.025 {
            break;
        }
        term *= (n - k) as f64 / (k + 1) as f64;
        k += 1;
    }
    (k >= 1).then(|| (xs[k - 1], xs[n - k]))
}

#[cfg(test)]
mod tests {
    use super::{median, median_interval};

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![0.72, 0.61, 0.66]), 0.66);
        assert_eq!(median(vec![3.0, 1.0, 4.0, 2.0]), 2.5);
        assert_eq!(median(vec![0.7]), 0.7);
    }

    fn ranks(n: usize) -> Vec<f64> {
        (1..=n).rev().map(|i| i as f64).collect()
    }

    #[test]
    fn interval_is_the_binomial_order_statistics() {
        // As tabulated for the sign test: n = 9 → the 2nd and 8th smallest,
        // 27 → 8th and 20th, 54 → 20th and 35th, 6 → the extremes.
        assert_eq!(median_interval(ranks(9)), Some((2.0, 8.0)));
        assert_eq!(median_interval(ranks(27)), Some((8.0, 20.0)));
        assert_eq!(median_interval(ranks(54)), Some((20.0, 35.0)));
        assert_eq!(median_interval(ranks(6)), Some((1.0, 6.0)));
    }

    #[test]
    fn too_few_rounds_give_no_interval() {
        assert_eq!(median_interval(ranks(5)), None);
        assert_eq!(median_interval(vec![0.7]), None);
        assert_eq!(median_interval(Vec::new()), None);
    }
}

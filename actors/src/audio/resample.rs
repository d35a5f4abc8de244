//! Linear resampling between 8 kHz telephony audio and the 16/24 kHz rates engines use.
//!
//! Linear interpolation is cheap and good enough for upsampling into engines that tolerate it and for
//! tests. It does no low-pass filtering: downsampling speech from 16/24 kHz with it aliases, and
//! recognition accuracy suffers (see `shared/ENGINES.md`); engines that care use a band-limited
//! resampler instead.

/// Resamples `input` from `from_hz` to `to_hz` by linear interpolation.
///
/// The output has `len × to_hz / from_hz` samples (rounded down). Equal rates return a copy.
pub fn resample_linear(input: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    assert!(from_hz > 0 && to_hz > 0, "sample rates must be positive");
    if from_hz == to_hz || input.is_empty() {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    let last = input.len() - 1;
    (0..out_len)
        .map(|i| {
            // Position in the input, as a whole index plus a fraction in units of 1/to_hz.
            let numerator = i as u64 * u64::from(from_hz);
            let index = (numerator / u64::from(to_hz)) as usize;
            let fraction = (numerator % u64::from(to_hz)) as i64;
            let a = i64::from(input[index.min(last)]);
            let b = i64::from(input[(index + 1).min(last)]);
            (a + (b - a) * fraction / i64::from(to_hz)) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_doubles_and_interpolates() {
        let out = resample_linear(&[0, 100, 200], 8_000, 16_000);
        assert_eq!(out, vec![0, 50, 100, 150, 200, 200]);
    }

    #[test]
    fn three_times_for_24k() {
        let out = resample_linear(&[0, 300], 8_000, 24_000);
        assert_eq!(out, vec![0, 100, 200, 300, 300, 300]);
    }

    #[test]
    fn downsampling_picks_every_nth_sample() {
        let input: Vec<i16> = (0..48).collect();
        let out = resample_linear(&input, 24_000, 8_000);
        assert_eq!(out.len(), 16);
        assert_eq!(out[..4], [0, 3, 6, 9]);
    }

    #[test]
    fn round_trip_keeps_a_slow_signal() {
        let input: Vec<i16> = (0..160)
            .map(|i| ((i as f64 / 20.0).sin() * 8000.0) as i16)
            .collect();
        let up = resample_linear(&input, 8_000, 16_000);
        let down = resample_linear(&up, 16_000, 8_000);
        assert_eq!(down, input);
    }
}

//! G.711 mu-law, as Twilio Media Streams carry it (`audio/x-mulaw`, 8 kHz, mono).
//!
//! Decoding is one lookup in a 256-entry table built at compile time; encoding finds the segment
//! (exponent) with a 256-entry table, the classic CCITT reference approach. Samples beyond
//! ±[`CLIP`] saturate to the largest code.

/// Largest magnitude mu-law represents before the bias is added; louder samples saturate.
pub const CLIP: i16 = 32_635;

/// Bias added before finding the segment, so that small samples land in segment 0.
const BIAS: i32 = 0x84;

/// Mu-law code for digital silence (positive zero), used to pad frames.
pub const SILENCE: u8 = 0xFF;

/// Linear sample for every mu-law code.
static DECODE_TABLE: [i16; 256] = build_decode_table();

/// Segment (exponent) for the biased magnitude's bits 7..15.
static EXPONENT_TABLE: [u8; 256] = build_exponent_table();

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let inverted = !(code as u8);
        let exponent = ((inverted >> 4) & 0x07) as i32;
        let mantissa = (inverted & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
        table[code] = if inverted & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        code += 1;
    }
    table
}

const fn build_exponent_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut index = 1;
    while index < 256 {
        // floor(log2(index)): the segment of a biased magnitude whose bits 7..15 are `index`.
        let mut exponent = 0u8;
        let mut value = index;
        while value > 1 {
            exponent += 1;
            value >>= 1;
        }
        table[index] = exponent;
        index += 1;
    }
    table
}

/// Decodes one mu-law byte to a 16-bit linear sample.
#[inline]
pub fn decode_sample(code: u8) -> i16 {
    DECODE_TABLE[code as usize]
}

/// Encodes one 16-bit linear sample to mu-law.
#[inline]
pub fn encode_sample(sample: i16) -> u8 {
    let sample = i32::from(sample);
    let sign: u8 = if sample < 0 { 0x80 } else { 0x00 };
    let magnitude = sample.abs().min(i32::from(CLIP)) + BIAS;
    let exponent = EXPONENT_TABLE[((magnitude >> 7) & 0xFF) as usize];
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// Decodes mu-law bytes, appending linear samples to `out`.
pub fn decode_into(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&code| decode_sample(code)));
}

/// Encodes linear samples, appending mu-law bytes to `out`.
pub fn encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&sample| encode_sample(sample)));
}

/// Decodes mu-law bytes, appending samples in [-1, 1] to `out` (what speech engines take).
pub fn decode_float_into(codes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        codes
            .iter()
            .map(|&code| f32::from(decode_sample(code)) / 32768.0),
    );
}

/// Encodes samples in [-1, 1] (clipped beyond), appending mu-law bytes to `out`.
pub fn encode_float_into(samples: &[f32], out: &mut Vec<u8>) {
    out.extend(
        samples
            .iter()
            .map(|&sample| encode_sample((sample * 32767.0).clamp(-32768.0, 32767.0) as i16)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_samples_round_trip_within_a_step() {
        let samples = [0.0_f32, 0.5, -0.25, 0.999, 1.5];
        let mut codes = Vec::new();
        encode_float_into(&samples, &mut codes);
        let mut back = Vec::new();
        decode_float_into(&codes, &mut back);
        assert_eq!(back[0], 0.0);
        assert!((back[1] - 0.5).abs() < 0.02 && (back[2] + 0.25).abs() < 0.01);
        assert_eq!(back[4], back[3], "beyond full scale clips");
    }

    #[test]
    fn both_zero_codes_decode_to_zero() {
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x7F), 0);
    }

    #[test]
    fn extreme_codes_match_the_g711_reference() {
        assert_eq!(decode_sample(0x00), -32_124);
        assert_eq!(decode_sample(0x80), 32_124);
        assert_eq!(decode_sample(0x0F), -16_764);
    }

    #[test]
    fn reference_encodings() {
        // Values from the ITU-T G.711 reference implementation (g711.c, linear2ulaw).
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(-1), 0x7F);
        assert_eq!(encode_sample(1000), 0xCE);
        assert_eq!(encode_sample(-1000), 0x4E);
        assert_eq!(encode_sample(32_124), 0x80);
        assert_eq!(encode_sample(-32_124), 0x00);
    }

    #[test]
    fn clips_at_32635() {
        assert_eq!(encode_sample(CLIP), encode_sample(i16::MAX));
        assert_eq!(encode_sample(-CLIP), encode_sample(i16::MIN));
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for code in 0..=255u8 {
            let sample = decode_sample(code);
            let again = encode_sample(sample);
            // 0x7F (negative zero) re-encodes as 0xFF; every other code is exact.
            if code == 0x7F {
                assert_eq!(again, 0xFF);
            } else {
                assert_eq!(again, code, "code {code:#04x} -> {sample} -> {again:#04x}");
            }
        }
    }

    #[test]
    fn quantisation_error_stays_within_the_segment_step() {
        for sample in (-32_000i16..32_000).step_by(7) {
            let decoded = i32::from(decode_sample(encode_sample(sample)));
            let error = (decoded - i32::from(sample)).abs();
            let step = (i32::from(sample).abs() / 16).max(8);
            assert!(error <= step, "{sample} -> {decoded}");
        }
    }
}

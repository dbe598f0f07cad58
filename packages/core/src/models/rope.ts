import type { RopeScaling } from "./config.js";

const f = Math.fround;

/**
 * RoPE inverse frequencies exactly as Hugging Face computes them (float32 arithmetic, emulated
 * with Math.fround so angles match transformers bit for bit where it matters):
 * inv_freq[i] = 1 / θ^(2i/d), then the `rope_scaling` rule (llama3: HF's
 * _compute_llama3_parameters; linear: divide by factor; yarn: HF's _compute_yarn_parameters).
 * Returns the frequencies and the attention factor that multiplies cos/sin (1 except for YaRN).
 */
export function ropeFrequencies(dim: number, theta: number, scaling: RopeScaling | null): { inverseFrequencies: Float64Array; attentionFactor: number } {
  const half = dim / 2;
  const base = new Float64Array(half);
  for (let i = 0; i < half; i++) base[i] = f(1 / f(Math.pow(theta, f((2 * i) / dim))));
  if (!scaling) return { inverseFrequencies: base, attentionFactor: 1 };
  switch (scaling.rope_type) {
    case "linear":
      return { inverseFrequencies: base.map((v) => f(v / scaling.factor)), attentionFactor: 1 };
    case "llama3": {
      const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: oldLen } = scaling;
      const lowFreqWavelen = oldLen / low;
      const highFreqWavelen = oldLen / high;
      const out = base.map((freq) => {
        const wavelen = (2 * Math.PI) / freq;
        if (wavelen < highFreqWavelen) return freq;
        if (wavelen > lowFreqWavelen) return f(freq / factor);
        const smooth = (oldLen / wavelen - low) / (high - low);
        return f((1 - smooth) * (freq / factor) + smooth * freq);
      });
      return { inverseFrequencies: out, attentionFactor: 1 };
    }
    case "yarn":
      return yarnFrequencies(dim, theta, scaling);
  }
}

/** YaRN's mscale: 0.1·mscale·ln(scale) + 1 for scale > 1. */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarnFrequencies(dim: number, theta: number, s: Extract<RopeScaling, { rope_type: "yarn" }>): { inverseFrequencies: Float64Array; attentionFactor: number } {
  const half = dim / 2;
  const oldLen = s.original_max_position_embeddings;
  // Dimension index whose wavelength completes `rotations` turns over the original context.
  const correctionDim = (rotations: number) => (dim * Math.log(oldLen / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  const low = Math.max(Math.floor(correctionDim(s.beta_fast)), 0);
  const high = Math.min(Math.ceil(correctionDim(s.beta_slow)), dim - 1);
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const posFreq = Math.pow(theta, (2 * i) / dim);
    const extrapolation = 1 / posFreq;
    const interpolation = 1 / (s.factor * posFreq);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high === low ? high - low + 0.001 : high - low)));
    const extrapolationFactor = 1 - ramp;
    out[i] = f(interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor);
  }
  const attentionFactor = s.mscale_all_dim
    ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscale_all_dim)
    : yarnMscale(s.factor, s.mscale);
  return { inverseFrequencies: out, attentionFactor };
}

import { keep, noGrad } from "../tensor/engine.js";
import { Tensor } from "../tensor/tensor.js";

/** AdamW hyper-parameters (PyTorch names and defaults, but weight decay 0.01 as torch.optim.AdamW). */
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/**
 * AdamW with decoupled weight decay, one fused backend kernel per parameter. Moments live on the
 * device and are allocated once, so steady-state steps allocate nothing here.
 */
export class AdamW {
  /** Steps taken (bias corrections use it). */
  stepCount = 0;
  readonly options: Required<AdamWOptions>;
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();

  constructor(readonly params: readonly Tensor[], options: AdamWOptions) {
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...options };
  }

  /** Apply one update to every parameter that has a gradient; `lr` overrides the base rate (schedules). */
  step(options: { lr?: number; gradScale?: number } = {}): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    const lr = options.lr ?? this.options.lr;
    this.stepCount++;
    const bc1 = 1 - Math.pow(beta1, this.stepCount);
    const bc2 = 1 - Math.pow(beta2, this.stepCount);
    noGrad(() => {
      for (const p of this.params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        if (!s) {
          s = { m: keep(Tensor.zeros(p.backend, p.shape)), v: keep(Tensor.zeros(p.backend, p.shape)) };
          this.state.set(p, s);
        }
        p.backend.adamw({
          param: p.buffer, grad: p.grad.buffer, m: s.m.buffer, v: s.v.buffer, n: p.size,
          lr, beta1, beta2, eps, weightDecay, biasCorrection1: bc1, biasCorrection2: bc2, gradScale: options.gradScale ?? 1,
        });
      }
    });
  }

  /** Drop every gradient (set to none, as PyTorch's default). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The moments of a parameter (for checkpoints), if it has been stepped. */
  moments(p: Tensor): { m: Tensor; v: Tensor } | undefined {
    return this.state.get(p);
  }

  /** Free the moments. */
  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}

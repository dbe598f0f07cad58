// Thin SVD by one-sided (Hestenes) Jacobi in float64: orthogonalise the columns of A by plane
// rotations, then the column norms are the singular values. Slow (O(sweeps·m·n²)) but simple,
// deterministic and accurate to working precision, which is what the reference backend needs.
import { EcomlaError } from "../errors.js";
import type { SvdResult } from "../interfaces/backend.js";

const MAX_SWEEPS = 100;

/** Columns of W orthogonalised in place; V accumulates the rotations. */
interface JacobiResult {
  /** (cols) column norms, unsorted. */
  norms: Float64Array;
  /** (cols, rows) column-major: the rotated columns of W (not normalised). */
  columns: Float64Array;
  /** (cols, cols) column-major: the right singular vectors, column j for norms[j]. */
  right: Float64Array;
}

function oneSidedJacobi(
  columns: Float64Array, // (cols, rows): column j at [j·rows, (j+1)·rows), rows ≥ cols
  rows: number,
  cols: number,
): JacobiResult {
  const right = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) right[j * cols + j] = 1;
  // A rotation is skipped once the pair's cosine is at rounding level; a tighter bound could
  // chase noise from the dot products forever.
  const tol = Math.sqrt(rows) * Number.EPSILON;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotations = 0;
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        const po = p * rows;
        const qo = q * rows;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < rows; i++) {
          const wp = columns[po + i]!;
          const wq = columns[qo + i]!;
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotations++;
        // The smaller root of t² + 2ζt − 1 = 0 makes the rotated pair orthogonal.
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.abs(zeta) > 1e150 ? 1 / (2 * zeta) : (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const wp = columns[po + i]!;
          const wq = columns[qo + i]!;
          columns[po + i] = c * wp - s * wq;
          columns[qo + i] = s * wp + c * wq;
        }
        const pv = p * cols;
        const qv = q * cols;
        for (let i = 0; i < cols; i++) {
          const vp = right[pv + i]!;
          const vq = right[qv + i]!;
          right[pv + i] = c * vp - s * vq;
          right[qv + i] = s * vp + c * vq;
        }
      }
    }
    if (rotations === 0) break;
  }
  const norms = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += columns[j * rows + i]! ** 2;
    norms[j] = Math.sqrt(sum);
  }
  return { norms, columns, right };
}

/**
 * Orthonormal left vectors, sorted by descending singular value. Columns whose singular value is
 * zero at working precision (≤ σmax·max(rows, cols)·ε) cannot be normalised reliably, so they are
 * replaced by an orthonormal completion built from the standard basis vector with the largest
 * component outside the span so far (Gram-Schmidt, twice). U therefore always has orthonormal
 * columns; those singular values keep their (tiny or zero) computed size.
 */
function leftVectors(
  jacobi: JacobiResult,
  order: readonly number[], // (cols) column indices, descending norm
  rows: number,
): Float64Array /* (cols, rows) column-major */ {
  const cols = order.length;
  const left = new Float64Array(cols * rows);
  const maxNorm = cols > 0 ? jacobi.norms[order[0]!]! : 0;
  const zeroTol = maxNorm * Math.max(rows, cols) * Number.EPSILON;
  // Squared length of each standard basis vector's projection onto the accepted columns.
  const coveredSq = new Float64Array(rows);
  for (let c = 0; c < cols; c++) {
    const src = order[c]!;
    const norm = jacobi.norms[src]!;
    const out = c * rows;
    if (norm > zeroTol && norm > 0) {
      for (let i = 0; i < rows; i++) left[out + i] = jacobi.columns[src * rows + i]! / norm;
    } else {
      let best = 0;
      for (let i = 1; i < rows; i++) if (coveredSq[i]! < coveredSq[best]!) best = i;
      left[out + best] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let prev = 0; prev < c; prev++) {
          let dot = 0;
          for (let i = 0; i < rows; i++) dot += left[prev * rows + i]! * left[out + i]!;
          for (let i = 0; i < rows; i++) left[out + i] = left[out + i]! - dot * left[prev * rows + i]!;
        }
      }
      let lengthSq = 0;
      for (let i = 0; i < rows; i++) lengthSq += left[out + i]! ** 2;
      const inv = 1 / Math.sqrt(lengthSq);
      for (let i = 0; i < rows; i++) left[out + i] = left[out + i]! * inv;
    }
    for (let i = 0; i < rows; i++) coveredSq[i] = coveredSq[i]! + left[out + i]! ** 2;
  }
  return left;
}

/**
 * Thin SVD A = U·diag(S)·Vᵀ of a row-major m×n matrix by one-sided Jacobi in float64; S descending,
 * U (m, k) with orthonormal columns (completed where S is zero), Vᵀ (k, n), k = min(m, n).
 */
export function jacobiSvd(
  a: Float64Array | Float32Array, // (m, n) row-major
  m: number,
  n: number,
): SvdResult {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 0 || n < 0) {
    throw new EcomlaError(`jacobiSvd: m and n must be non-negative integers, found m=${m}, n=${n}`);
  }
  if (a.length < m * n) throw new EcomlaError(`jacobiSvd: matrix (${m}, ${n}) needs ${m * n} elements, found ${a.length}`);
  for (let i = 0; i < m * n; i++) {
    if (!Number.isFinite(a[i]!)) throw new EcomlaError(`jacobiSvd: element ${i} (row ${Math.floor(i / n)}, col ${i % n}) is ${a[i]}, expected a finite number`);
  }
  const k = Math.min(m, n);
  // Work on the tall orientation: A when m ≥ n, else Aᵀ (whose columns are A's rows).
  const tall = m >= n;
  const rows = tall ? m : n;
  const cols = k;
  const columns = new Float64Array(rows * cols);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      if (tall) columns[j * rows + i] = a[i * n + j]!;
      else columns[i * rows + j] = a[i * n + j]!;
    }
  }
  const jacobi = oneSidedJacobi(columns, rows, cols);
  const order = Array.from({ length: cols }, (_, j) => j).sort((x, y) => jacobi.norms[y]! - jacobi.norms[x]! || x - y);
  const left = leftVectors(jacobi, order, rows);
  const u = new Float64Array(m * k);
  const s = new Float64Array(k);
  const vt = new Float64Array(k * n);
  for (let c = 0; c < k; c++) {
    const src = order[c]!;
    s[c] = jacobi.norms[src]!;
    if (tall) {
      // A = W·Vᵀ with W = U·S: U from the normalised columns, Vᵀ rows from V's columns.
      for (let i = 0; i < m; i++) u[i * k + c] = left[c * rows + i]!;
      for (let j = 0; j < n; j++) vt[c * n + j] = jacobi.right[src * cols + j]!;
    } else {
      // Aᵀ = U'·S·V'ᵀ, so A = V'·S·U'ᵀ: the roles of the two factors swap.
      for (let i = 0; i < m; i++) u[i * k + c] = jacobi.right[src * cols + i]!;
      for (let j = 0; j < n; j++) vt[c * n + j] = left[c * rows + j]!;
    }
  }
  return { u, s, vt };
}

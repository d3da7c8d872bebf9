// CUDA kernels of the cuda backend. Compiled to PTX (kernels.ptx, committed,
// embedded in the Go package) with:
//
//   nvcc -ptx -arch=compute_80 -o kernels/cuda/kernels.ptx kernels/cuda/kernels.cu
//
// (scripts/cuda-check.sh ptx, which also records this file's sha256 so that
// a test catches a stale PTX).
//
// Conventions: float32, dense row-major tensors. Dimensions are int, flat
// element counts long long; every index is checked against the bounds, so
// no shape needs to be a multiple of a block size. Launches with no work are
// skipped on the host. Elementwise kernels use grid-stride loops so that the
// host may cap the grid. Kernels that mirror a kernels/cpu or train function
// follow its order of operations so that the two agree to rounding.

#include <math.h>

#define GRID_STRIDE(i, n)                                                       \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;        \
         i < (long long)(n); i += (long long)blockDim.x * gridDim.x)

// Activation kinds, numbered as train's activation enum.
#define ACT_RELU 0
#define ACT_LEAKY_RELU 1
#define ACT_TANH 2
#define ACT_SIGMOID 3
#define LEAKY_SLOPE 0.01f

// ---------------------------------------------------------------------------
// Pairwise squared distances.

#define PD_TILE 16

// pairwise_sqdist writes dst[b,q,n] = scale * sum_d (x[b,q,d]-y[b,n,d])^2
// for x [B,Q,D], y [B,N,D], dst [B,Q,N] (scale -1: ProtoNet's logits). Block (16,16) computes a 16x16 tile of
// (q,n); x and y rows are staged through shared memory 16 features at a time.
// The differences are formed explicitly, as on the CPU: |x|²+|y|²-2x·y
// cancels badly for close points. Grid: (ceil(N/16), <=ceil(Q/16), <=B),
// y and z strided so the host may cap them at 65535.
extern "C" __global__ void pairwise_sqdist(float* __restrict__ dst, const float* __restrict__ x,
                                           const float* __restrict__ y, int B, int Q, int N, int D, float scale) {
    __shared__ float xs[PD_TILE][PD_TILE + 1];
    __shared__ float ys[PD_TILE][PD_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int n0 = blockIdx.x * PD_TILE;
    for (int b = blockIdx.z; b < B; b += gridDim.z) {
        const float* xb = x + (long long)b * Q * D;
        const float* yb = y + (long long)b * N * D;
        for (int q0 = blockIdx.y * PD_TILE; q0 < Q; q0 += gridDim.y * PD_TILE) {
            float acc = 0.f;
            for (int d0 = 0; d0 < D; d0 += PD_TILE) {
                const int d = d0 + tx;
                xs[ty][tx] = (q0 + ty < Q && d < D) ? xb[(long long)(q0 + ty) * D + d] : 0.f;
                ys[ty][tx] = (n0 + ty < N && d < D) ? yb[(long long)(n0 + ty) * D + d] : 0.f;
                __syncthreads();
                const int dl = min(PD_TILE, D - d0);
                for (int k = 0; k < dl; k++) {
                    const float t = xs[ty][k] - ys[tx][k];
                    acc += t * t;
                }
                __syncthreads();
            }
            const int q = q0 + ty, n = n0 + tx;
            if (q < Q && n < N) dst[((long long)b * Q + q) * N + n] = scale * acc;
        }
    }
}

// pairwise_sqdist_grad_x accumulates (accumulate 1) or writes
// gx[b,q,d] += sum_n 2*gout[b,q,n]*(x[b,q,d]-y[b,n,d]).
// One thread per element of gx: consecutive threads read consecutive d of y.
extern "C" __global__ void pairwise_sqdist_grad_x(float* __restrict__ gx, const float* __restrict__ gout,
                                                  const float* __restrict__ x, const float* __restrict__ y,
                                                  int B, int Q, int N, int D, int accumulate) {
    GRID_STRIDE(i, (long long)B * Q * D) {
        const long long bq = i / D;
        const int d = (int)(i - bq * D);
        const long long b = bq / Q;
        const float xv = x[i];
        const float* g = gout + bq * N;
        const float* yb = y + b * N * D + d;
        float acc = 0.f;
        for (int n = 0; n < N; n++) acc += g[n] * (xv - yb[(long long)n * D]);
        gx[i] = accumulate ? gx[i] + 2.f * acc : 2.f * acc;
    }
}

// pairwise_sqdist_grad_y accumulates (accumulate 1) or writes
// gy[b,n,d] += sum_q -2*gout[b,q,n]*(x[b,q,d]-y[b,n,d]).
extern "C" __global__ void pairwise_sqdist_grad_y(float* __restrict__ gy, const float* __restrict__ gout,
                                                  const float* __restrict__ x, const float* __restrict__ y,
                                                  int B, int Q, int N, int D, int accumulate) {
    GRID_STRIDE(i, (long long)B * N * D) {
        const long long bn = i / D;
        const int d = (int)(i - bn * D);
        const long long b = bn / N;
        const int n = (int)(bn - b * N);
        const float yv = y[i];
        const float* g = gout + b * Q * N + n;
        const float* xb = x + b * Q * D + d;
        float acc = 0.f;
        for (int q = 0; q < Q; q++) acc += g[(long long)q * N] * (xb[(long long)q * D] - yv);
        gy[i] = accumulate ? gy[i] - 2.f * acc : -(2.f * acc);
    }
}

// ---------------------------------------------------------------------------
// Optimiser steps.

// skip_step is whether an update must leave p, m and v as they are: the
// step's loss (one float) is not finite, which the CPU learners refuse
// before updating. The device learners queue the update before the host
// reads the loss, so the kernel checks it; a null loss always applies (for
// callers that checked the loss on the host).
__device__ __forceinline__ bool skip_step(const float* __restrict__ loss) { return loss && !isfinite(*loss); }

// sgd_step applies p -= lr*(g + wd*p), as cpu.SGD (which skips the decay
// term when wd is 0); nothing changes when skip_step(loss).
extern "C" __global__ void sgd_step(float* __restrict__ p, const float* __restrict__ g,
                                    const float* __restrict__ loss, float lr, float wd, long long n) {
    if (skip_step(loss)) return;
    GRID_STRIDE(i, n) {
        const float pi = p[i];
        p[i] = wd == 0.f ? pi - lr * g[i] : pi - lr * (g[i] + wd * pi);
    }
}

// adam_step applies one Adam step as cpu.Adam. The host computes, in float64
// as the CPU does, step = lr/(1-beta1^t) and rbc2 = 1/sqrt(1-beta2^t);
// c1 = 1-beta1, c2 = 1-beta2, and l2 (L2 decay) or decay = 1-lr*wd (AdamW)
// in float32. Nothing changes when skip_step(loss).
extern "C" __global__ void adam_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                     float* __restrict__ v, const float* __restrict__ loss, long long n, float b1,
                                     float b2, float c1, float c2, float step, float rbc2, float eps, float l2,
                                     float decay) {
    if (skip_step(loss)) return;
    GRID_STRIDE(i, n) {
        const float pi = p[i];
        const float gi = g[i] + l2 * pi;
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = decay * pi - step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

// act_apply is the activation kind of v: act_forward's, and the fused
// epilogue of sgemm_batched, which must agree to the bit.
__device__ __forceinline__ float act_apply(float v, int kind) {
    switch (kind) {
        case ACT_RELU: return v > 0.f || v != v ? v : 0.f;  // NaN propagates, as Go's max(v, 0)
        case ACT_LEAKY_RELU: return v < 0.f ? v * LEAKY_SLOPE : v;
        case ACT_TANH: return tanhf(v);
        default: return 1.f / (1.f + expf(-v));
    }
}

// ---------------------------------------------------------------------------
// Batched matrix product. cuBLAS is a runtime library, not part of the
// driver API, so the backend carries its own: a 32x32 output tile per block
// of 16x16 threads, each thread computing 2x2 outputs, K staged through
// shared memory 32 at a time.

#define GM_TILE 32
#define GM_THREADS 16

// sgemm_batched computes, for each batch entry z,
//   C_z[i,j] = alpha * sum_p op(A_z)[i,p] * op(B_z)[p,j] + beta * C_z[i,j]
// with row-major op(A) [M,K] (A itself [K,M] when transA), op(B) [K,N] (B
// [N,K] when transB), leading dimensions lda/ldb/ldc and batch strides
// strideA/B/C in elements (0 shares an operand across the batch). With
// arows, stored row r of A_z is row arows[z*arowsStride + r] of A_z: the
// product reads the rows of a matrix kept on the device (the pool) that a
// meta-batch names, without gathering them first. As in BLAS, C is not
// read when beta is 0. An optional epilogue (a dense layer's
// bias and activation, fused): with bias, C_z[i,j] gets bias[z*biasStride +
// j] added, rounded as bias_add rounds it; with actOut, actOut (laid out as
// C) gets act_apply(C_z[i,j], actKind). Grid: (ceil(N/32), <=ceil(M/32),
// <=batch).
extern "C" __global__ void sgemm_batched(int transA, int transB, int M, int N, int K, float alpha,
                                         const float* __restrict__ A, int lda, long long strideA,
                                         const float* __restrict__ Bm, int ldb, long long strideB, float beta,
                                         float* __restrict__ C, int ldc, long long strideC, int batch,
                                         const float* __restrict__ bias, long long biasStride,
                                         float* __restrict__ actOut, int actKind,
                                         const int* __restrict__ arows, long long arowsStride) {
    __shared__ float As[GM_TILE][GM_TILE + 1];  // As[i][p]
    __shared__ float Bs[GM_TILE][GM_TILE + 1];  // Bs[p][j]
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * GM_THREADS + tx;
    const int j0 = blockIdx.x * GM_TILE;
    for (int z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* Az = A + z * strideA;
        const int* rz = arows ? arows + z * arowsStride : 0;
        const float* Bz = Bm + z * strideB;
        float* Cz = C + z * strideC;
        for (int i0 = blockIdx.y * GM_TILE; i0 < M; i0 += gridDim.y * GM_TILE) {
            float acc[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
            for (int p0 = 0; p0 < K; p0 += GM_TILE) {
                // Each operand tile is read along its contiguous dimension
                // (r counts rows of the stored matrix, c its columns).
                for (int e = tid; e < GM_TILE * GM_TILE; e += GM_THREADS * GM_THREADS) {
                    const int r = e / GM_TILE, c = e % GM_TILE;
                    if (!transA) {  // A [M,K]: row i0+r, column p0+c
                        const int i = i0 + r, p = p0 + c;
                        As[r][c] = (i < M && p < K) ? Az[(long long)(rz ? rz[i] : i) * lda + p] : 0.f;
                    } else {  // A [K,M]: row p0+r, column i0+c
                        const int p = p0 + r, i = i0 + c;
                        As[c][r] = (i < M && p < K) ? Az[(long long)(rz ? rz[p] : p) * lda + i] : 0.f;
                    }
                    if (!transB) {  // B [K,N]: row p0+r, column j0+c
                        const int p = p0 + r, j = j0 + c;
                        Bs[r][c] = (p < K && j < N) ? Bz[(long long)p * ldb + j] : 0.f;
                    } else {  // B [N,K]: row j0+r, column p0+c
                        const int j = j0 + r, p = p0 + c;
                        Bs[c][r] = (p < K && j < N) ? Bz[(long long)j * ldb + p] : 0.f;
                    }
                }
                __syncthreads();
                const int pl = min(GM_TILE, K - p0);
                for (int p = 0; p < pl; p++) {
                    const float a0 = As[ty][p], a1 = As[ty + GM_THREADS][p];
                    const float b0 = Bs[p][tx], b1 = Bs[p][tx + GM_THREADS];
                    acc[0][0] += a0 * b0;
                    acc[0][1] += a0 * b1;
                    acc[1][0] += a1 * b0;
                    acc[1][1] += a1 * b1;
                }
                __syncthreads();
            }
            for (int di = 0; di < 2; di++) {
                const int i = i0 + ty + di * GM_THREADS;
                if (i >= M) continue;
                for (int dj = 0; dj < 2; dj++) {
                    const int j = j0 + tx + dj * GM_THREADS;
                    if (j >= N) continue;
                    float* c = Cz + (long long)i * ldc + j;
                    float v = beta == 0.f ? alpha * acc[di][dj] : alpha * acc[di][dj] + beta * *c;
                    if (bias) v = __fadd_rn(v, bias[z * biasStride + j]);  // no contraction into the product
                    *c = v;
                    if (actOut) actOut[z * strideC + (long long)i * ldc + j] = act_apply(v, actKind);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// MLP pieces.

// bias_add does z[b,r,c] += bias[b*biasStride + c] for z [batch,rows,cols];
// biasStride 0 shares one bias, a parameter-vector length gives each batch
// entry (task) its own.
extern "C" __global__ void bias_add(float* __restrict__ z, const float* __restrict__ bias, int batch, int rows,
                                    int cols, long long biasStride) {
    const long long per = (long long)rows * cols;
    GRID_STRIDE(i, (long long)batch * per) {
        const long long b = i / per;
        const int c = (int)(i % cols);
        z[i] += bias[b * biasStride + c];
    }
}

#define CS_COLS 32
#define CS_ROWS 8

// col_sum writes (accumulate 0) or adds (accumulate 1) the column sums of
// x [batch,rows,cols] into dst[b*dstStride + c]: bias gradients, and the sum
// of per-task gradients over the meta-batch (rows = tasks). Block (32,8)
// owns 32 columns of one batch entry and reduces its rows in a fixed order,
// so results are deterministic. Grid: (ceil(cols/32), <=batch).
extern "C" __global__ void col_sum(float* __restrict__ dst, const float* __restrict__ x, int batch, int rows,
                                   int cols, long long dstStride, int accumulate) {
    __shared__ float part[CS_ROWS][CS_COLS];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * CS_COLS + tx;
    for (int b = blockIdx.y; b < batch; b += gridDim.y) {
        float s = 0.f;
        if (c < cols) {
            const float* xb = x + (long long)b * rows * cols + c;
            for (int r = ty; r < rows; r += CS_ROWS) s += xb[(long long)r * cols];
        }
        part[ty][tx] = s;
        __syncthreads();
        if (ty == 0 && c < cols) {
            float t = 0.f;
            for (int k = 0; k < CS_ROWS; k++) t += part[k][tx];
            float* d = dst + b * dstStride + c;
            *d = accumulate ? *d + t : t;
        }
        __syncthreads();
    }
}

// act_forward sets a = f(z).
extern "C" __global__ void act_forward(float* __restrict__ a, const float* __restrict__ z, long long n, int kind) {
    GRID_STRIDE(i, n) { a[i] = act_apply(z[i], kind); }
}

// act_backward sets dst = d * f'(z), f' taken from z (ReLU, leaky ReLU) or
// from the output a (tanh, sigmoid). dst may alias d.
extern "C" __global__ void act_backward(float* dst, const float* d, const float* __restrict__ z,
                                        const float* __restrict__ a, long long n, int kind) {
    GRID_STRIDE(i, n) {
        const float v = d[i];
        float r;
        switch (kind) {
            case ACT_RELU: r = z[i] > 0.f ? v : 0.f; break;
            case ACT_LEAKY_RELU: r = z[i] < 0.f ? v * LEAKY_SLOPE : v; break;
            case ACT_TANH: r = v * (1.f - a[i] * a[i]); break;
            default: r = v * a[i] * (1.f - a[i]); break;
        }
        dst[i] = r;
    }
}

// act_curv adds dz*curv*rz to dst, curv = f''/f' in terms of a: the
// second-order term of MAML's Hessian-vector products. Zero for the
// piecewise-linear activations, where the host skips the launch.
extern "C" __global__ void act_curv(float* __restrict__ dst, const float* __restrict__ dz,
                                    const float* __restrict__ a, const float* __restrict__ rz, long long n,
                                    int kind) {
    GRID_STRIDE(i, n) {
        if (kind == ACT_TANH) {
            dst[i] += dz[i] * (-2.f * a[i]) * rz[i];
        } else if (kind == ACT_SIGMOID) {
            dst[i] += dz[i] * (1.f - 2.f * a[i]) * rz[i];
        }
    }
}

// ---------------------------------------------------------------------------
// Losses. One thread per row: the rows have a handful of classes (ways).

// softmax_xent computes, per row r of logits [rows,C] with label labels[r]
// (a label outside [0,C) gives a NaN loss),
// the cross-entropy loss[r], the softmax prob [rows,C] and the gradient
// dlogits = scale*(prob - onehot). As train.softmaxCE, exponentials and sums
// are taken in double; scale is 1/rows there, 1/(rows*tasks) for a
// meta-batch mean.
extern "C" __global__ void softmax_xent(float* __restrict__ loss, float* __restrict__ prob,
                                        float* __restrict__ dlogits, const float* __restrict__ logits,
                                        const int* __restrict__ labels, int rows, int C, float scale) {
    GRID_STRIDE(r, rows) {
        const float* l = logits + r * C;
        float* p = prob + r * C;
        float* d = dlogits + r * C;
        float mx = l[0];
        for (int j = 1; j < C; j++) mx = fmaxf(mx, l[j]);
        double sum = 0.0;
        for (int j = 0; j < C; j++) {
            const double e = exp((double)(l[j] - mx));
            p[j] = (float)e;
            sum += e;
        }
        const double is = 1.0 / sum;
        for (int j = 0; j < C; j++) p[j] = (float)((double)p[j] * is);
        const int y = labels[r];
        for (int j = 0; j < C; j++) d[j] = p[j] * scale;
        if (y < 0 || y >= C) {  // labels live on the device: flag, don't fault
            loss[r] = nanf("");
            continue;
        }
        loss[r] = (float)(-((double)(l[y] - mx) - log(sum)));
        d[y] -= scale;
    }
}

// softmax_xent_rop writes the directional derivative of dlogits given that of
// the logits, rd = scale*prob*(rl - <prob,rl>), as train.softmaxCERop.
extern "C" __global__ void softmax_xent_rop(float* __restrict__ rd, const float* __restrict__ prob,
                                            const float* __restrict__ rlogits, int rows, int C, float scale) {
    GRID_STRIDE(r, rows) {
        const float* p = prob + r * C;
        const float* rl = rlogits + r * C;
        float dot = 0.f;
        for (int j = 0; j < C; j++) dot += p[j] * rl[j];
        for (int j = 0; j < C; j++) rd[r * C + j] = p[j] * (rl[j] - dot) * scale;
    }
}

// log_softmax writes the log-probabilities of logits [rows,C] and each row's
// arg-max (the first on ties), as train.logSoftmax.
extern "C" __global__ void log_softmax(float* __restrict__ out, int* __restrict__ labels,
                                       const float* __restrict__ logits, int rows, int C) {
    GRID_STRIDE(r, rows) {
        const float* l = logits + r * C;
        int best = 0;
        for (int j = 1; j < C; j++)
            if (l[j] > l[best]) best = j;
        const double mx = (double)l[best];
        double sum = 0.0;
        for (int j = 0; j < C; j++) sum += exp((double)l[j] - mx);
        const double ls = mx + log(sum);
        for (int j = 0; j < C; j++) out[r * C + j] = (float)((double)l[j] - ls);
        labels[r] = best;
    }
}

// ---------------------------------------------------------------------------
// Prototypes.

// class_mean writes proto[b,w,h] = mean of emb[b,s,h] over the support rows s
// with labels[b,s] == w (0 for a way with no rows), for emb [B,S,H] and
// labels [B,S] in [0,W). One thread per output; each scans its task's labels.
extern "C" __global__ void class_mean(float* __restrict__ proto, const float* __restrict__ emb,
                                      const int* __restrict__ labels, int B, int S, int W, int H) {
    GRID_STRIDE(i, (long long)B * W * H) {
        const long long bw = i / H;
        const int h = (int)(i - bw * H);
        const long long b = bw / W;
        const int w = (int)(bw - b * W);
        const int* lb = labels + b * S;
        const float* eb = emb + b * S * H + h;
        float s = 0.f;
        int cnt = 0;
        for (int k = 0; k < S; k++) {
            if (lb[k] == w) {
                s += eb[(long long)k * H];
                cnt++;
            }
        }
        proto[i] = cnt > 0 ? s * (1.f / (float)cnt) : 0.f;
    }
}

// class_mean_grad accumulates (accumulate 1) or writes
// demb[b,s,h] += dproto[b,labels[b,s],h]/count, count the number of rows of
// that label in the task.
extern "C" __global__ void class_mean_grad(float* __restrict__ demb, const float* __restrict__ dproto,
                                           const int* __restrict__ labels, int B, int S, int W, int H,
                                           int accumulate) {
    GRID_STRIDE(i, (long long)B * S * H) {
        const long long bs = i / H;
        const int h = (int)(i - bs * H);
        const long long b = bs / S;
        const int* lb = labels + b * S;
        const int y = labels[bs];
        if (y < 0 || y >= W) {  // class_mean ignores such rows too
            if (!accumulate) demb[i] = 0.f;
            continue;
        }
        int cnt = 0;
        for (int k = 0; k < S; k++) cnt += lb[k] == y;
        const float g = dproto[(b * W + y) * H + h] * (1.f / (float)cnt);
        demb[i] = accumulate ? demb[i] + g : g;
    }
}

// ---------------------------------------------------------------------------
// Vector helpers.

// scale_vec does dst = alpha*x; dst may be x.
extern "C" __global__ void scale_vec(float* dst, const float* x, float alpha, long long n) {
    GRID_STRIDE(i, n) { dst[i] = x[i] * alpha; }
}

// axpy does y += alpha*x.
extern "C" __global__ void axpy(float* __restrict__ y, const float* __restrict__ x, float alpha, long long n) {
    GRID_STRIDE(i, n) { y[i] += alpha * x[i]; }
}

// inner_update writes MAML's fast weights for a meta-batch:
//   wf[b,i] = w[b*wStride + i] - lr_i * g[b,i],  lr_i = lrVec ? lrVec[i] : lr
// for b < batch, i < n; wStride 0 starts every task from the shared weights.
extern "C" __global__ void inner_update(float* __restrict__ wf, const float* __restrict__ w, long long wStride,
                                        const float* __restrict__ g, const float* __restrict__ lrVec, float lr,
                                        long long n, int batch) {
    GRID_STRIDE(i, (long long)batch * n) {
        const long long b = i / n;
        const long long k = i - b * n;
        const float a = lrVec ? lrVec[k] : lr;
        wf[i] = w[b * wStride + k] - a * g[i];
    }
}

#define RS_THREADS 256

// reduce_sum writes out[0] = scale * sum(x[0:n]), summed in double in a fixed
// order by a single block: the per-row losses of a meta-step, a few thousand
// values, reduced without a copy to the host. Launch with one block of 256.
extern "C" __global__ void reduce_sum(float* __restrict__ out, const float* __restrict__ x, long long n,
                                      float scale) {
    __shared__ double part[RS_THREADS];
    const int t = threadIdx.x;
    double s = 0.0;
    for (long long i = t; i < n; i += RS_THREADS) s += (double)x[i];
    part[t] = s;
    __syncthreads();
    for (int w = RS_THREADS / 2; w > 0; w >>= 1) {
        if (t < w) part[t] += part[t + w];
        __syncthreads();
    }
    if (t == 0) out[0] = (float)(part[0] * (double)scale);
}

// perceptd: the engine's run-phase ops on the GPU (everything but the
// GEMMs, which go to cuBLAS). One parameter struct per kernel, passed by
// value and mirrored by a #[repr(C)] struct in src/cuda/lower.rs; every
// kernel is a grid-stride loop, so any grid size is correct. Compiled at
// boot by NVRTC; no headers.

#define MAX_DIMS 8

// Activation codes (src/cuda/lower.rs `act_code`).
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_SILU 2
#define ACT_SIGMOID 3
#define ACT_LEAKY 4
#define ACT_HARDSIGMOID 5
#define ACT_HARDSWISH 6
#define ACT_TANH 7
#define ACT_CLIP 8
#define ACT_ELU 9
// Unary codes continue after the activations.
#define UN_SQRT 20
#define UN_NEG 21
#define UN_ABS 22
#define UN_EXP 23
#define UN_LOG 24
#define UN_FLOOR 25
#define UN_CEIL 26
#define UN_ROUND 27
#define UN_RECIP 28
#define UN_ERF 29
#define UN_SIGN 30
#define UN_SIN 31
#define UN_COS 32

// Binary codes.
#define BIN_ADD 0
#define BIN_SUB 1
#define BIN_MUL 2
#define BIN_DIV 3
#define BIN_POW 4
#define BIN_MAX 5
#define BIN_MIN 6

typedef long long i64;

#define GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ float apply_act(int act, float x, float a, float b) {
    switch (act) {
    case ACT_RELU: return x > 0.0f ? x : 0.0f;
    case ACT_SILU: return x * sigmoidf(x);
    case ACT_SIGMOID: return sigmoidf(x);
    case ACT_LEAKY: return x >= 0.0f ? x : a * x;
    case ACT_HARDSIGMOID: return fmaxf(0.0f, fminf(1.0f, a * x + b));
    case ACT_HARDSWISH: return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
    case ACT_TANH: return tanhf(x);
    case ACT_CLIP: return fminf(fmaxf(x, a), b);
    case ACT_ELU: return x >= 0.0f ? x : a * (expf(x) - 1.0f);
    case UN_SQRT: return sqrtf(x);
    case UN_NEG: return -x;
    case UN_ABS: return fabsf(x);
    case UN_EXP: return expf(x);
    case UN_LOG: return logf(x);
    case UN_FLOOR: return floorf(x);
    case UN_CEIL: return ceilf(x);
    case UN_ROUND: return rintf(x); // half to even, like ONNX Round
    case UN_RECIP: return 1.0f / x;
    case UN_ERF: return erff(x);
    case UN_SIGN: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    case UN_SIN: return sinf(x);
    case UN_COS: return cosf(x);
    default: return x;
    }
}

// ------------------------------------------------------------ movement ---

// dst[dst_base + sum(i_d * dst_st_d)] = src[src_base + sum(i_d * src_st_d)]
// over the multi-index i of `dims` (row-major, n elements in all). Covers
// Transpose, Slice, Split, Concat, Expand and plain copies.
struct CopyParams {
    float* dst;
    const float* src;
    i64 n;
    i64 src_base;
    i64 dst_base;
    i64 dims[MAX_DIMS];
    i64 src_st[MAX_DIMS];
    i64 dst_st[MAX_DIMS];
    int ndim;
};

extern "C" __global__ void copy_nd(CopyParams p) {
    GRID_STRIDE(i, p.n) {
        i64 rem = i, so = p.src_base, d = p.dst_base;
        for (int k = p.ndim - 1; k >= 0; --k) {
            i64 idx = rem % p.dims[k];
            rem /= p.dims[k];
            so += idx * p.src_st[k];
            d += idx * p.dst_st[k];
        }
        p.dst[d] = p.src[so];
    }
}

struct FillParams {
    float* dst;
    i64 n;
    float value;
};

extern "C" __global__ void fill(FillParams p) {
    GRID_STRIDE(i, p.n) { p.dst[i] = p.value; }
}

// --------------------------------------------------------- elementwise ---

// out[i] = a[..] op b[..] with broadcast strides (0 on broadcast axes).
struct BinaryParams {
    float* out;
    const float* a;
    const float* b;
    i64 n;
    i64 dims[MAX_DIMS];
    i64 a_st[MAX_DIMS];
    i64 b_st[MAX_DIMS];
    int ndim;
    int op;
};

extern "C" __global__ void binary_nd(BinaryParams p) {
    GRID_STRIDE(i, p.n) {
        i64 rem = i, ia = 0, ib = 0;
        for (int k = p.ndim - 1; k >= 0; --k) {
            i64 idx = rem % p.dims[k];
            rem /= p.dims[k];
            ia += idx * p.a_st[k];
            ib += idx * p.b_st[k];
        }
        float x = p.a[ia], y = p.b[ib], r;
        switch (p.op) {
        case BIN_ADD: r = x + y; break;
        case BIN_SUB: r = x - y; break;
        case BIN_MUL: r = x * y; break;
        case BIN_DIV: r = x / y; break;
        case BIN_POW: r = powf(x, y); break;
        case BIN_MAX: r = (x != x || y != y) ? __int_as_float(0x7fc00000) : fmaxf(x, y); break;
        case BIN_MIN: r = (x != x || y != y) ? __int_as_float(0x7fc00000) : fminf(x, y); break;
        default: r = 0.0f;
        }
        p.out[i] = r;
    }
}

// Activations and unary maths, element by element (may run in place).
struct UnaryParams {
    float* out;
    const float* x;
    i64 n;
    int op;
    float alpha;
    float beta;
};

extern "C" __global__ void unary(UnaryParams p) {
    GRID_STRIDE(i, p.n) { p.out[i] = apply_act(p.op, p.x[i], p.alpha, p.beta); }
}

// y = act(x * scale[c] + shift[c]) over [outer, channels, inner]: conv
// bias + fused activation (scale null), and BatchNormalization.
struct ChannelParams {
    float* y;
    const float* x;
    const float* scale; // null: 1
    const float* shift; // null: 0
    i64 n;
    i64 inner;
    int channels;
    int act;
    float alpha;
    float beta;
};

extern "C" __global__ void channel_affine(ChannelParams p) {
    GRID_STRIDE(i, p.n) {
        int c = (int)((i / p.inner) % p.channels);
        float v = p.x[i];
        if (p.scale) v *= p.scale[c];
        if (p.shift) v += p.shift[c];
        p.y[i] = apply_act(p.act, v, p.alpha, p.beta);
    }
}

// f32 -> f16 (round to nearest even), for the FP16 tensor-core GEMMs.
struct HalfParams {
    unsigned short* dst;
    const float* src;
    i64 n;
};

extern "C" __global__ void to_half(HalfParams p) {
    GRID_STRIDE(i, p.n) {
        unsigned short h;
        float x = p.src[i];
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
        p.dst[i] = h;
    }
}

// ---------------------------------------------------------------- conv ---

// One image's im2col for 2-D convolution: col[(c*kh + ky)*kw + kx][oy*ow + ox]
// for the channels [c0, c0 + cin) of x (C x H x W); 0 in the padding. The
// output is f32 or, with `half` set, f16 for the FP16 GEMM.
struct Im2colParams {
    const float* x;
    void* col;
    i64 n; // cin * kh * kw * oh * ow
    int cin;
    int h;
    int w;
    int kh;
    int kw;
    int oh;
    int ow;
    int sh;
    int sw;
    int ph;
    int pw;
    int dh;
    int dw;
    int half;
};

extern "C" __global__ void im2col(Im2colParams p) {
    const i64 cols = (i64)p.oh * p.ow;
    GRID_STRIDE(i, p.n) {
        i64 r = i / cols, q = i % cols;
        int kx = (int)(r % p.kw);
        int ky = (int)((r / p.kw) % p.kh);
        int c = (int)(r / ((i64)p.kw * p.kh));
        int ox = (int)(q % p.ow), oy = (int)(q / p.ow);
        int iy = oy * p.sh - p.ph + ky * p.dh;
        int ix = ox * p.sw - p.pw + kx * p.dw;
        float v = 0.0f;
        if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) v = p.x[((i64)c * p.h + iy) * p.w + ix];
        if (p.half) {
            unsigned short h;
            asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
            ((unsigned short*)p.col)[i] = h;
        } else {
            ((float*)p.col)[i] = v;
        }
    }
}

// Direct 2-D convolution for grouped / depthwise convs (one thread per
// output), with bias and the fused activation. x: N x C x H x W, w:
// Cout x (C/group) x kh x kw.
struct DirectConvParams {
    const float* x;
    const float* w;
    const float* bias; // may be null
    float* y;
    i64 n; // N * cout * oh * ow
    int c;
    int h;
    int wd;
    int cout;
    int group;
    int kh;
    int kw;
    int oh;
    int ow;
    int sh;
    int sw;
    int ph;
    int pw;
    int dh;
    int dw;
    int act;
    float alpha;
    float beta;
};

extern "C" __global__ void conv_direct(DirectConvParams p) {
    const int cin_g = p.c / p.group, cout_g = p.cout / p.group;
    GRID_STRIDE(i, p.n) {
        int ox = (int)(i % p.ow);
        int oy = (int)((i / p.ow) % p.oh);
        int co = (int)((i / ((i64)p.ow * p.oh)) % p.cout);
        i64 b = i / ((i64)p.ow * p.oh * p.cout);
        int g = co / cout_g;
        float acc = p.bias ? p.bias[co] : 0.0f;
        for (int ci = 0; ci < cin_g; ++ci) {
            const float* xp = p.x + ((b * p.c) + (i64)g * cin_g + ci) * p.h * p.wd;
            const float* wp = p.w + (((i64)co * cin_g + ci) * p.kh) * p.kw;
            for (int ky = 0; ky < p.kh; ++ky) {
                int iy = oy * p.sh - p.ph + ky * p.dh;
                if (iy < 0 || iy >= p.h) continue;
                for (int kx = 0; kx < p.kw; ++kx) {
                    int ix = ox * p.sw - p.pw + kx * p.dw;
                    if (ix < 0 || ix >= p.wd) continue;
                    acc += xp[(i64)iy * p.wd + ix] * wp[ky * p.kw + kx];
                }
            }
        }
        p.y[i] = apply_act(p.act, acc, p.alpha, p.beta);
    }
}

// ---------------------------------------------------------------- pool ---

// 2-D max / average pooling over N*C planes; padding excluded from max,
// and from the average unless count_include_pad.
struct PoolParams {
    const float* x;
    float* y;
    i64 n; // N * C * oh * ow
    int h;
    int w;
    int oh;
    int ow;
    int kh;
    int kw;
    int sh;
    int sw;
    int ph;
    int pw;
    int pad_end_h;
    int pad_end_w;
    int dh;
    int dw;
    int is_max;
    int count_include_pad;
};

extern "C" __global__ void pool2d(PoolParams p) {
    GRID_STRIDE(i, p.n) {
        int ox = (int)(i % p.ow);
        int oy = (int)((i / p.ow) % p.oh);
        i64 nc = i / ((i64)p.ow * p.oh);
        const float* xp = p.x + nc * p.h * p.w;
        float acc = p.is_max ? -__int_as_float(0x7f800000) : 0.0f;
        int count = 0;
        bool nan = false;
        for (int ky = 0; ky < p.kh; ++ky) {
            int iy = oy * p.sh - p.ph + ky * p.dh;
            for (int kx = 0; kx < p.kw; ++kx) {
                int ix = ox * p.sw - p.pw + kx * p.dw;
                bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
                if (!in) {
                    // Padding the window may cover (not ceil_mode overhang).
                    if (iy < p.h + p.pad_end_h && ix < p.w + p.pad_end_w) count += p.count_include_pad;
                    continue;
                }
                float v = xp[(i64)iy * p.w + ix];
                if (p.is_max) {
                    if (v != v) nan = true;
                    acc = fmaxf(acc, v);
                } else {
                    acc += v;
                }
                count += 1;
            }
        }
        if (p.is_max) {
            p.y[i] = nan ? __int_as_float(0x7fc00000) : acc;
        } else {
            p.y[i] = count > 0 ? acc / (float)count : 0.0f;
        }
    }
}

// Global max / average over each of `rows` rows of `len` elements: one
// block per row, a shared-memory tree reduction (blockDim.x = 256).
struct GlobalPoolParams {
    const float* x;
    float* y;
    i64 rows;
    i64 len;
    int is_max;
};

extern "C" __global__ void global_pool(GlobalPoolParams p) {
    __shared__ float buf[256];
    for (i64 r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const float* xp = p.x + r * p.len;
        float acc = p.is_max ? -__int_as_float(0x7f800000) : 0.0f;
        for (i64 j = threadIdx.x; j < p.len; j += blockDim.x) {
            float v = xp[j];
            acc = p.is_max ? ((v != v || acc != acc) ? __int_as_float(0x7fc00000) : fmaxf(acc, v)) : acc + v;
        }
        buf[threadIdx.x] = acc;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s) {
                float a = buf[threadIdx.x], b = buf[threadIdx.x + s];
                buf[threadIdx.x] = p.is_max ? ((a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b)) : a + b;
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) p.y[r] = p.is_max ? buf[0] : buf[0] / (float)p.len;
        __syncthreads();
    }
}

// -------------------------------------------------------------- resize ---

// Separable resize of the last two axes through per-axis tap tables built
// on the host by the CPU code (nearest: 1 tap, linear: 2, cubic: 4):
// y[nc][oy][ox] = sum_ty sum_tx wy[oy][ty] * wx[ox][tx] * x[nc][iy][ix].
struct ResizeParams {
    const float* x;
    float* y;
    const int* yidx;
    const float* yw;
    const int* xidx;
    const float* xw;
    i64 n; // planes * oh * ow
    int h;
    int w;
    int oh;
    int ow;
    int ytaps;
    int xtaps;
};

extern "C" __global__ void resize2d(ResizeParams p) {
    GRID_STRIDE(i, p.n) {
        int ox = (int)(i % p.ow);
        int oy = (int)((i / p.ow) % p.oh);
        i64 plane = i / ((i64)p.ow * p.oh);
        const float* xp = p.x + plane * p.h * p.w;
        float acc = 0.0f;
        for (int ty = 0; ty < p.ytaps; ++ty) {
            int iy = p.yidx[oy * p.ytaps + ty];
            float wy = p.yw[oy * p.ytaps + ty];
            float row = 0.0f;
            for (int tx = 0; tx < p.xtaps; ++tx) {
                row += p.xw[ox * p.xtaps + tx] * xp[(i64)iy * p.w + p.xidx[ox * p.xtaps + tx]];
            }
            acc += wy * row;
        }
        p.y[i] = acc;
    }
}

// ------------------------------------------------------------- softmax ---

// Softmax (or log-softmax) over the middle axis of [outer, len, inner]:
// one thread per (outer, inner) row.
struct SoftmaxParams {
    const float* x;
    float* y;
    i64 rows; // outer * inner
    i64 len;
    i64 inner;
    int log;
};

extern "C" __global__ void softmax(SoftmaxParams p) {
    GRID_STRIDE(r, p.rows) {
        i64 o = r / p.inner, in = r % p.inner;
        i64 base = o * p.len * p.inner + in;
        float m = -__int_as_float(0x7f800000);
        for (i64 j = 0; j < p.len; ++j) m = fmaxf(m, p.x[base + j * p.inner]);
        float s = 0.0f;
        for (i64 j = 0; j < p.len; ++j) s += expf(p.x[base + j * p.inner] - m);
        for (i64 j = 0; j < p.len; ++j) {
            float v = p.x[base + j * p.inner] - m;
            p.y[base + j * p.inner] = p.log ? v - logf(s) : expf(v) / s;
        }
    }
}

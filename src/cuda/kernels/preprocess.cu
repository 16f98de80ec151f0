// perceptd: the fused preprocessing kernel. One thread per model-input
// pixel: source pixel format -> 8-bit RGB (BT.601 limited range, OpenCV's
// fixed-point formula, exactly as src/preprocess/mod.rs) -> letterbox
// (cv2.INTER_LINEAR taps precomputed on the host by the CPU code's rules)
// or an optional undistortion remap -> /255 -> planar RGB (NCHW, batch 1);
// for YOLOX (`div` 1, `bgr` 1) 0..255 in planes B, G, R.
// Compiled at boot by NVRTC; no headers.

#define FMT_YUYV 0
#define FMT_UYVY 1
#define FMT_NV12 2
#define FMT_GREY 3
#define FMT_RGB24 4
#define FMT_I420 5
#define FMT_I422 6
#define FMT_I444 7

struct F2 {
    float x;
    float y;
};

struct Tap {
    int i0;
    int i1;
    float w;
};

struct PreParams {
    const unsigned char* src;
    float* dst;
    // Per model-input pixel a source coordinate (x, y) in pixels (integers
    // are pixel centres), row-major dst_h x dst_w; null: plain letterbox.
    const F2* remap;
    const Tap* xs; // new_w taps (source column indexes, not byte offsets)
    const Tap* ys; // new_h taps
    int format;
    int src_w;
    int src_h;
    int dst_w;
    int dst_h;
    int new_w;
    int new_h;
    int top;
    int left;
    float pad; // 114 / div
    float div; // 255, or 1 for YOLOX (0..255 input)
    int bgr;   // 1: planes B, G, R (YOLOX)
};

__device__ __forceinline__ int clamp_u8(int v) {
    v >>= 20;
    return v < 0 ? 0 : (v > 255 ? 255 : v);
}

__device__ __forceinline__ void yuv_px(int y, int u, int v, int* rgb) {
    const int CY = 1220542, CUB = 2116026, CUG = -409993, CVG = -852492, CVR = 1673527;
    int luma = y < 16 ? 0 : (y - 16) * CY;
    u -= 128;
    v -= 128;
    const int half = 1 << 19;
    rgb[0] = clamp_u8(luma + half + CVR * v);
    rgb[1] = clamp_u8(luma + half + CVG * v + CUG * u);
    rgb[2] = clamp_u8(luma + half + CUB * u);
}

// Source pixel (x, y) as 8-bit RGB, converted like the CPU path: chroma
// shared by each 2x1 (4:2:2) or 2x2 (4:2:0) block, no interpolation.
__device__ void src_rgb(const PreParams& p, int x, int y, int* rgb) {
    const unsigned char* f = p.src;
    const int w = p.src_w, h = p.src_h;
    const int cw = (w + 1) / 2, ch = (h + 1) / 2;
    switch (p.format) {
    case FMT_RGB24: {
        const unsigned char* q = f + ((long long)y * w + x) * 3;
        rgb[0] = q[0];
        rgb[1] = q[1];
        rgb[2] = q[2];
        return;
    }
    case FMT_GREY: {
        int g = f[(long long)y * w + x];
        rgb[0] = g;
        rgb[1] = g;
        rgb[2] = g;
        return;
    }
    case FMT_YUYV: {
        const unsigned char* r = f + (long long)y * cw * 4 + (x / 2) * 4;
        yuv_px(r[(x & 1) * 2], r[1], r[3], rgb);
        return;
    }
    case FMT_UYVY: {
        const unsigned char* r = f + (long long)y * cw * 4 + (x / 2) * 4;
        yuv_px(r[1 + (x & 1) * 2], r[0], r[2], rgb);
        return;
    }
    case FMT_NV12: {
        const unsigned char* uv = f + (long long)w * h + (long long)(y / 2) * cw * 2 + (x / 2) * 2;
        yuv_px(f[(long long)y * w + x], uv[0], uv[1], rgb);
        return;
    }
    case FMT_I420:
    case FMT_I422: {
        int crow = p.format == FMT_I420 ? y / 2 : y;
        int crows = p.format == FMT_I420 ? ch : h;
        long long base = (long long)w * h;
        int u = f[base + (long long)crow * cw + x / 2];
        int v = f[base + (long long)crows * cw + (long long)crow * cw + x / 2];
        yuv_px(f[(long long)y * w + x], u, v, rgb);
        return;
    }
    case FMT_I444: {
        long long i = (long long)y * w + x, plane = (long long)w * h;
        yuv_px(f[i], f[plane + i], f[2 * plane + i], rgb);
        return;
    }
    default:
        rgb[0] = 0;
        rgb[1] = 0;
        rgb[2] = 0;
    }
}

extern "C" __global__ void preprocess(PreParams p) {
    const int plane = p.dst_w * p.dst_h;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < plane; i += blockDim.x * gridDim.x) {
        const int ox = i % p.dst_w, oy = i / p.dst_w;
        float out[3] = {p.pad, p.pad, p.pad};
        int x0, x1, y0, y1;
        float wx, wy;
        bool inside;
        if (p.remap) {
            F2 m = p.remap[i];
            // NaN fails every comparison, so it lands in the padding too.
            inside = m.x >= 0.0f && m.x <= (float)(p.src_w - 1) && m.y >= 0.0f &&
                     m.y <= (float)(p.src_h - 1);
            if (inside) {
                float fx = floorf(m.x), fy = floorf(m.y);
                x0 = (int)fx;
                y0 = (int)fy;
                wx = m.x - fx;
                wy = m.y - fy;
                x1 = min(x0 + 1, p.src_w - 1);
                y1 = min(y0 + 1, p.src_h - 1);
            }
        } else {
            const int cx = ox - p.left, cy = oy - p.top;
            inside = cx >= 0 && cx < p.new_w && cy >= 0 && cy < p.new_h;
            if (inside) {
                Tap tx = p.xs[cx], ty = p.ys[cy];
                x0 = tx.i0;
                x1 = tx.i1;
                wx = tx.w;
                y0 = ty.i0;
                y1 = ty.i1;
                wy = ty.w;
            }
        }
        if (inside) {
            int a[3], b[3], c[3], d[3];
            src_rgb(p, x0, y0, a);
            src_rgb(p, x1, y0, b);
            src_rgb(p, x0, y1, c);
            src_rgb(p, x1, y1, d);
            for (int k = 0; k < 3; ++k) {
                // Same order of operations as the CPU: horizontal, then
                // vertical, then / div (255, or 1 for YOLOX).
                float h0 = (float)a[k] + wx * ((float)b[k] - (float)a[k]);
                float h1 = (float)c[k] + wx * ((float)d[k] - (float)c[k]);
                out[k] = (h0 + wy * (h1 - h0)) / p.div;
            }
        }
        // Planes R, G, B, or B, G, R for YOLOX.
        p.dst[(p.bgr ? 2 : 0) * plane + i] = out[0];
        p.dst[plane + i] = out[1];
        p.dst[(p.bgr ? 0 : 2) * plane + i] = out[2];
    }
}

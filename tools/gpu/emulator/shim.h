// CUDA C on the CPU: what modicl's kernels (crates/cuda/kernels/*.cu) use of the CUDA language,
// defined so that g++ compiles them unchanged for the GPU emulator (emulator.cpp). Each CUDA
// thread runs as a fiber; __syncthreads, __syncwarp and the warp shuffles switch fibers.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

struct emu_dim3 {
    unsigned x, y, z;
};

// The running thread's indices, set by the scheduler before it switches to a thread.
extern emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// Barriers: every live thread of the block (or of the warp, with the lanes in `mask`) must
// reach one before any passes it.
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
// A warp shuffle of 8 raw bytes: every lane in `mask` offers `bits`; returns those of lane
// (this lane ^ lane_mask).
uint64_t emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask);

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    (void)width;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    bits = emu_shfl_xor(mask, bits, lane_mask);
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}

inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, 4);
    return i;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One block runs at a time, so a block's shared memory is a static array.
#define __shared__ static

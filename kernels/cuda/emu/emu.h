// emu.h lets kernels.cu compile as host C++ for the CPU emulation of the
// driver (fakecuda.cc): each block's threads run as fibers, switching at
// __syncthreads, blocks one after another, so a function-static variable
// behaves as the block's shared memory.
#pragma once

#include <math.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
extern uint3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads();

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

// An addition rounded on its own: kept out of line so that the host
// compiler cannot contract it with a product into a fused multiply-add,
// as nvcc may not.
__attribute__((noinline)) static float __fadd_rn(float a, float b) { return a + b; }

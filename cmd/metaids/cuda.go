//go:build metaids_cuda

package main

// The cuda build registers the GPU backend with kernels, for --backend cuda
// and auto.
import _ "github.com/metaids/metaids/kernels/cuda"

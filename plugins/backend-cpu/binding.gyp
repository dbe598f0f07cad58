{
  "variables": {
    "kernel_sources": [
      "native/k_layout.cc",
      "native/k_elementwise.cc",
      "native/k_nn.cc",
      "native/k_attention.cc",
      "native/k_loss.cc",
      "native/k_table.cc"
    ],
    "common_cflags": ["-O3", "-fPIC", "-fno-math-errno", "-ffp-contract=fast", "-std=gnu++17", "-Wno-psabi"]
  },
  "targets": [
    {
      # The hot kernels built for AVX-512 machines (Zen4, Skylake-X and later); chosen at load time.
      "target_name": "kernels_avx512",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "cflags_cc": ["<@(common_cflags)", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx2", "-mfma", "-mf16c", "-mprefer-vector-width=512"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      # AVX2/FMA build for the many x86-64 machines without AVX-512.
      "target_name": "kernels_avx2",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "cflags_cc": ["<@(common_cflags)", "-mavx2", "-mfma", "-mf16c"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      # Baseline x86-64 (SSE2) so the addon loads anywhere.
      "target_name": "kernels_generic",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "cflags_cc": ["<@(common_cflags)"],
      "cflags_cc!": ["-fno-exceptions"]
    },
    {
      "target_name": "ecomla_cpu",
      "dependencies": ["kernels_generic", "kernels_avx2", "kernels_avx512"],
      "sources": ["native/addon.cc", "native/pool.cc", "native/blas.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "/usr/include/x86_64-linux-gnu/openblas-pthread",
        "/usr/include/openblas"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["<@(common_cflags)"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}

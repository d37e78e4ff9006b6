{
  "variables": { "openblas_include%": "/usr/include/x86_64-linux-gnu/openblas-pthread" },
  "targets": [
    {
      "target_name": "qgs",
      "sources": [
        "<!@(node -p \"const fs=require('fs');['native/cpu','native/napi'].flatMap(d=>fs.readdirSync(d).filter(f=>/\\.(cpp|cc)$/.test(f)).map(f=>d+'/'+f)).join(' ')\")"
      ],
      "include_dirs": ["native/include", "native/napi", "<(openblas_include)"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "QGS_WITH_BLAS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp-simd", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["-lopenblas", "-lpthread"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17" }
    }
  ]
}

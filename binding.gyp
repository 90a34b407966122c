{
  "targets": [
    {
      "target_name": "tmem",
      "sources": [
        "native/binding.cc",
        "native/uffd.cc",
        "native/sys_error.cc",
        "native/memory.cc",
        "native/thread.cc",
        "native/deadman.cc",
        "native/inline_fault.cc",
        "native/file_io.cc",
        "native/page_codec.cc",
        "native/store_reader.cc",
        "native/binding_store.cc",
        "native/resp_conn.cc",
        "native/binding_remote.cc",
        "native/shared_pool.cc",
        "native/binding_shared.cc",
        "native/binding_faults.cc",
        "native/fault_serve.cc",
        "native/fault_thread.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}

{
  # Built by npm's bundled node-gyp during `npm ci` (the root package has a
  # binding.gyp and no install script, so npm runs `node-gyp rebuild`).
  "targets": [
    {
      "target_name": "sftppush_inotify",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/addon.cc", "native/inotify.cc", "native/flock.cc", "native/lease.cc", "native/stat.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          # NAPI_VERSION 8 is the floor shared by Node 20 and 24 and brings
          # napi_add_async_cleanup_hook, which lets us close the uv handle on
          # environment teardown (worker exit) without tripping uv_loop_close.
          "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
          # Node's common.gypi picks the language level (gnu++17 on 20,
          # gnu++20 on 24) and disables exceptions; pin ours so one source
          # builds the same against either set of headers.
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
          # -ffp-contract=off: native/stat.cc computes mtimeMs as JavaScript does, with no fused multiply-add.
          "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-ffp-contract=off"]
        }, {
          # inotify is Linux-only; elsewhere build nothing so `npm ci` still
          # succeeds on developer laptops and the TS wrapper reports the gap.
          "type": "none"
        }]
      ]
    }
  ]
}

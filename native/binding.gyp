{
  "targets": [
    {
      "target_name": "inotify",
      "sources": ["inotify.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "talos_kdf",
      "sources": ["kdf.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}

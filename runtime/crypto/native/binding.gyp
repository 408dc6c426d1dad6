{
  "targets": [
    {
      "target_name": "talos_native",
      "sources": ["addon.c", "aead.c", "ed25519.c", "kdf.c", "secret-filter.c", "x25519.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "conditions": [["OS=='linux'", { "libraries": ["-ldl"] }]]
    }
  ]
}

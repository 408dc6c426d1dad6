/* The addon's entry: argument reading shared by every call, and the module's exports. */
#include "native.h"

int read_uint8_array(napi_env env, napi_value value, bytes_t *b) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  return napi_get_typedarray_info(env, value, &type, &b->len, (void **)&b->p, &ab, &offset) == napi_ok && type == napi_uint8_array;
}

int read_arrays(napi_env env, napi_callback_info info, size_t n, bytes_t *arrays) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  int ok = n <= MAX_ARGS && napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= n;
  for (size_t i = 0; ok && i < n; i++) ok = read_uint8_array(env, argv[i], &arrays[i]);
  if (!ok) napi_throw_type_error(env, "native_bad_call", "talos_native: arguments must be Uint8Arrays");
  return ok;
}

int read_call(napi_env env, napi_callback_info info, size_t counts, call_t *c) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  bytes_t in, out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 + counts ||
      !read_uint8_array(env, argv[0], &in) || !read_uint8_array(env, argv[1], &out)) {
    napi_throw_type_error(env, "native_bad_call", "talos_native: (input: Uint8Array, output: Uint8Array, ...lengths)");
    return 0;
  }
  c->in = in.p, c->in_len = in.len, c->out = out.p, c->out_len = out.len;
  for (size_t i = 0; i < counts; i++) {
    if (napi_get_value_uint32(env, argv[2 + i], &c->n[i]) != napi_ok) {
      napi_throw_type_error(env, "native_bad_call", "talos_native: lengths are unsigned integers");
      return 0;
    }
  }
  return 1;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "hmacEach", talos_hmac_each);
  export_function(env, exports, "hkdf", talos_hkdf);
  export_function(env, exports, "mayHoldSecret", talos_may_hold_secret);
  if (talos_aead_unavailable() == NULL) {
    export_function(env, exports, "chachaSeal", talos_chacha_seal);
    export_function(env, exports, "chachaOpen", talos_chacha_open);
  }
  const char *why = talos_x25519_unavailable();
  if (why == NULL) {
    export_function(env, exports, "x25519", talos_x25519);
    export_function(env, exports, "x25519Base", talos_x25519_base);
  } else {
    napi_value reason;
    napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &reason);
    napi_set_named_property(env, exports, "x25519Unavailable", reason);
  }
  const char *ed_why = talos_ed25519_unavailable();
  if (ed_why == NULL) {
    export_function(env, exports, "ed25519Public", talos_ed25519_public);
    export_function(env, exports, "ed25519Sign", talos_ed25519_sign);
  } else {
    napi_value reason;
    napi_create_string_utf8(env, ed_why, NAPI_AUTO_LENGTH, &reason);
    napi_set_named_property(env, exports, "ed25519Unavailable", reason);
  }
  return exports;
}

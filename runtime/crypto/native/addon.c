/* The addon's entry: argument reading shared by every call, and the module's exports. */
#include "native.h"
#include <openssl/crypto.h>

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

void wipe_key_argument(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  bytes_t key;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 && read_uint8_array(env, argv[0], &key)) {
    OPENSSL_cleanse(key.p, key.len < KEY_BYTES ? key.len : KEY_BYTES);
  }
}

int read_key_call(napi_env env, napi_callback_info info, size_t in_min, size_t out_min, const char *refusal, call_t *c) {
  const int read = read_call(env, info, 0, c);
  if (read && c->in_len >= in_min && c->out_len >= out_min) return 1;
  wipe_key_argument(env, info);
  if (read) napi_throw_range_error(env, "native_bad_call", refusal);
  return 0;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

/* Two functions that need OpenSSL internals: exported when `why` is NULL, else `why` under `reason_name`. */
static void export_or_explain(napi_env env, napi_value exports, const char *why, const char *reason_name, const char *name1, napi_callback fn1,
                              const char *name2, napi_callback fn2) {
  if (why == NULL) {
    export_function(env, exports, name1, fn1);
    export_function(env, exports, name2, fn2);
    return;
  }
  napi_value reason;
  napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &reason);
  napi_set_named_property(env, exports, reason_name, reason);
}

void bytes_from_hex(uint8_t *out, const char *hex, size_t n) {
  for (size_t i = 0; i < 2 * n; i++) {
    const char h = hex[i];
    const uint8_t nibble = (uint8_t)(h <= '9' ? h - '0' : h - 'a' + 10);
    out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | nibble : nibble << 4);
  }
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "hmacEach", talos_hmac_each);
  export_function(env, exports, "hkdf", talos_hkdf);
  export_function(env, exports, "mayHoldSecret", talos_may_hold_secret);
  if (talos_aead_unavailable() == NULL) {
    export_function(env, exports, "chachaSeal", talos_chacha_seal);
    export_function(env, exports, "chachaOpen", talos_chacha_open);
  }
  export_or_explain(env, exports, talos_x25519_unavailable(), "x25519Unavailable", "x25519", talos_x25519, "x25519Base", talos_x25519_base);
  export_or_explain(env, exports, talos_ed25519_unavailable(), "ed25519Unavailable", "ed25519Public", talos_ed25519_public, "ed25519Sign",
                    talos_ed25519_sign);
  return exports;
}

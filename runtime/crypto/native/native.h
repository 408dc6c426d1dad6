/* The Talos native addon (Node-API): short KDFs (kdf.c), ChaCha20-Poly1305 (aead.c), X25519
 * (x25519.c) and Ed25519 keys and signatures (ed25519.c) on the OpenSSL inside Node, and the
 * simulator's leak filter (secret-filter.c).
 * Every call names its arrays; no pointer outlives a call. */
#ifndef TALOS_NATIVE_H
#define TALOS_NATIVE_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ARGS 6

typedef struct {
  uint8_t *in, *out;
  size_t in_len, out_len;
  uint32_t n[MAX_ARGS - 2];
} call_t;

typedef struct {
  uint8_t *p;
  size_t len;
} bytes_t;

/* Reads one Uint8Array argument (no exception: false when it is not one). */
int read_uint8_array(napi_env env, napi_value value, bytes_t *b);

/* Reads n Uint8Array arguments; false with an exception pending when they are not that. */
int read_arrays(napi_env env, napi_callback_info info, size_t n, bytes_t *arrays);

/* Reads (input: Uint8Array, output: Uint8Array, ...`counts` lengths); false with an exception
 * pending when the arguments are not that. */
int read_call(napi_env env, napi_callback_info info, size_t counts, call_t *c);

/* Bytes of the secret key (an X25519 scalar, an Ed25519 seed) at the start of a key call's first argument. */
#define KEY_BYTES 32

/* Wipes the key at the start of the first argument, when that is a Uint8Array: a refused call
 * leaves no key behind. */
void wipe_key_argument(napi_env env, napi_callback_info info);

/* read_call (no lengths) for a call whose input starts with a key: at least in_min bytes in and
 * out_min out, else the key is wiped and a RangeError (`refusal`) or TypeError is pending. */
int read_key_call(napi_env env, napi_callback_info info, size_t in_min, size_t out_min, const char *refusal, call_t *c);

/* out = the n bytes that 2n lower-case hex digits spell (for the addon's built-in test vectors). */
void bytes_from_hex(uint8_t *out, const char *hex, size_t n);

napi_value talos_hmac_each(napi_env env, napi_callback_info info);
napi_value talos_hkdf(napi_env env, napi_callback_info info);

/* NULL when OpenSSL's ChaCha20-Poly1305 is usable here (then the two below are exported). */
const char *talos_aead_unavailable(void);
napi_value talos_chacha_seal(napi_env env, napi_callback_info info);
napi_value talos_chacha_open(napi_env env, napi_callback_info info);

/* NULL when OpenSSL's X25519 is usable here, else why not (then the two below are not exported). */
const char *talos_x25519_unavailable(void);
napi_value talos_x25519(napi_env env, napi_callback_info info);
napi_value talos_x25519_base(napi_env env, napi_callback_info info);

/* NULL when OpenSSL's Ed25519 is usable here, else why not (then the two below are not exported). */
const char *talos_ed25519_unavailable(void);
napi_value talos_ed25519_public(napi_env env, napi_callback_info info);
napi_value talos_ed25519_sign(napi_env env, napi_callback_info info);

/* The simulator's leak scanner's first look at a text (secret-filter.c). */
napi_value talos_may_hold_secret(napi_env env, napi_callback_info info);
#endif

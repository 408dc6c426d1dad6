/*
 * Ed25519 key derivation and signing (RFC 8032) on the implementation inside Node's OpenSSL,
 * called directly, as x25519.c does for X25519.
 *
 * Why: through node:crypto a signature by a new seed pays for importing the key (a scalar
 * multiplication to derive its public key, plus OpenSSL 3's key objects) before the signing
 * itself, and every signature pays for a fresh signing context. Here a public key costs one
 * fixed-base multiplication and a signature one more.
 *
 * The functions are internal to OpenSSL (crypto/ec/curve25519.c), so they are looked up at load.
 * Their arguments changed in OpenSSL 3.2 (Ed25519ctx and Ed25519ph flags were added), so only
 * the 3.0 and 3.1 forms are called, and only after they give the RFC 8032 section 7.1 answers;
 * anything else leaves Ed25519 to node:crypto (native-ed25519.ts says why). Verification stays
 * with node:crypto: its strict checks are PROTOCOL.md section 2's, and it is asked far less often.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include "native.h"
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>

#define KEY KEY_BYTES
#define SIG 64

/* OpenSSL 3.0 and 3.1: (..., OSSL_LIB_CTX *libctx, const char *propq); NULLs pick the defaults. */
typedef int (*public_fn)(void *libctx, uint8_t out[KEY], const uint8_t seed[KEY], const char *propq);
typedef int (*sign_fn)(uint8_t out[SIG], const uint8_t *message, size_t message_len, const uint8_t public_key[KEY],
                       const uint8_t seed[KEY], void *libctx, const char *propq);

static public_fn public_from_seed;
static sign_fn sign;

/* RFC 8032 section 7.1, TEST 2: the public key, and the signature of the one-byte message 0x72. */
static int answers_rfc8032(void) {
  uint8_t seed[KEY], wanted_public[KEY], wanted_sig[SIG], out[SIG];
  const uint8_t message[1] = {0x72};
  bytes_from_hex(seed, "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", KEY);
  bytes_from_hex(wanted_public, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", KEY);
  bytes_from_hex(wanted_sig,
           "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
           "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
           SIG);
  if (public_from_seed(NULL, out, seed, NULL) != 1 || memcmp(out, wanted_public, KEY) != 0) return 0;
  return sign(out, message, 1, wanted_public, seed, NULL, NULL) == 1 && memcmp(out, wanted_sig, SIG) == 0;
}

/* OpenSSL failed (never expected): its error queue emptied (node:crypto reads it), an exception thrown. */
static void fail(napi_env env, const char *what) {
  ERR_clear_error();
  char message[64];
  snprintf(message, sizeof message, "talos_native: OpenSSL's Ed25519 %s failed", what);
  napi_throw_error(env, "native_failed", message);
}

static const char *unavailable;
static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;

static void look_up(void) {
  const unsigned long version = OpenSSL_version_num();
  if (version < 0x30000000UL || version >= 0x30200000UL) {
    unavailable = "OpenSSL's internal Ed25519 functions are called only in their 3.0 and 3.1 forms";
    return;
  }
  public_from_seed = (public_fn)dlsym(RTLD_DEFAULT, "ossl_ed25519_public_from_private");
  sign = (sign_fn)dlsym(RTLD_DEFAULT, "ossl_ed25519_sign");
  if (public_from_seed == NULL || sign == NULL) unavailable = "this Node does not export OpenSSL's Ed25519 functions";
  else if (!answers_rfc8032()) {
    ERR_clear_error();
    unavailable = "OpenSSL's Ed25519 functions did not give the RFC 8032 answers";
  }
}

const char *talos_ed25519_unavailable(void) {
  pthread_once(&lookup_once, look_up);
  return unavailable;
}

/* ed25519Public(input, output): input = seed (32 bytes, wiped), output = its public key. */
napi_value talos_ed25519_public(napi_env env, napi_callback_info info) {
  call_t c;
  if (!read_key_call(env, info, KEY, KEY, "talos_native: ed25519Public needs 32 bytes in, 32 out", &c)) return NULL;
  uint8_t public_key[KEY];
  const int ok = public_from_seed(NULL, public_key, c.in, NULL) == 1;
  OPENSSL_cleanse(c.in, KEY);
  if (ok) memcpy(c.out, public_key, KEY);
  else fail(env, "public key");
  return NULL;
}

/* ed25519Sign(keys, message, out): keys = seed || its public key (64 bytes, the seed wiped, also
 * when the call is refused), out = the signature (64 bytes). The public key must be the seed's
 * own: a signature made with another one gives the seed away (the double public key attack);
 * node.ts passes the one it derived from the seed. */
napi_value talos_ed25519_sign(napi_env env, napi_callback_info info) {
  bytes_t a[3];
  const int read = read_arrays(env, info, 3, a);
  if (!read || a[0].len < 2 * KEY || a[2].len < SIG) {
    wipe_key_argument(env, info);
    if (read) napi_throw_range_error(env, "native_bad_call", "talos_native: ed25519Sign needs 64 bytes of keys, 64 out");
    return NULL;
  }
  uint8_t signature[SIG];
  const int ok = sign(signature, a[1].p, a[1].len, a[0].p + KEY, a[0].p, NULL, NULL) == 1;
  OPENSSL_cleanse(a[0].p, KEY);
  if (ok) memcpy(a[2].p, signature, SIG);
  else fail(env, "signature");
  return NULL;
}

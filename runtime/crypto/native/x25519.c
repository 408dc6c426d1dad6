/*
 * X25519 (RFC 7748) on the implementation inside Node's OpenSSL, called directly.
 *
 * Why: through node:crypto every operation pays for OpenSSL 3's key objects and contexts on top
 * of the scalar multiplication. Measured on a 2-core host where the multiplication itself takes
 * ~46 us: importing a private key (which computes its public key) ~64 us, a DH ~67 us, importing
 * a peer's public key ~25 us. A DH ratchet step pays all three, and every message of a
 * conversation is one. Here a key pair costs one fixed-base multiplication and a DH one ladder.
 *
 * The functions are OpenSSL's own (crypto/ec/curve25519.c: the ladder clamps the scalar and
 * masks the top bit of u as RFC 7748 asks; the result is checked for all zeros in constant
 * time). They are internal to OpenSSL, so they are looked up at load, not linked: a Node that
 * does not export them (one built on a shared libcrypto, say) or whose versions do not give the
 * RFC 7748 section 6.1 answers leaves X25519 to node:crypto (native-x25519.ts says why).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include "native.h"
#include <openssl/crypto.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>

#define KEY KEY_BYTES

typedef int (*x25519_fn)(uint8_t out[KEY], const uint8_t scalar[KEY], const uint8_t u[KEY]);
typedef void (*x25519_base_fn)(uint8_t out[KEY], const uint8_t scalar[KEY]);

static x25519_fn shared_secret;
static x25519_base_fn public_key;

/* RFC 7748 section 6.1: Alice's public key, and the secret she shares with Bob. */
static int answers_rfc7748(void) {
  uint8_t alice[KEY], bob_public[KEY], alice_public[KEY], shared[KEY], out[KEY];
  bytes_from_hex(alice, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", KEY);
  bytes_from_hex(bob_public, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", KEY);
  bytes_from_hex(alice_public, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", KEY);
  bytes_from_hex(shared, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", KEY);
  public_key(out, alice);
  if (memcmp(out, alice_public, KEY) != 0) return 0;
  return shared_secret(out, alice, bob_public) == 1 && memcmp(out, shared, KEY) == 0;
}

/* Looked up and checked once per process: every thread that loads the addon shares the answer. */
static const char *unavailable;
static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;

static void look_up(void) {
  shared_secret = (x25519_fn)dlsym(RTLD_DEFAULT, "ossl_x25519");
  public_key = (x25519_base_fn)dlsym(RTLD_DEFAULT, "ossl_x25519_public_from_private");
  if (shared_secret == NULL || public_key == NULL) unavailable = "this Node does not export OpenSSL's X25519 functions";
  else if (!answers_rfc7748()) unavailable = "OpenSSL's X25519 functions did not give the RFC 7748 answers";
}

const char *talos_x25519_unavailable(void) {
  pthread_once(&lookup_once, look_up);
  return unavailable;
}

/* x25519(input, output) -> boolean: input = scalar || u (64 bytes), output = the shared secret
 * (32 bytes); false when that secret is all zeros (a low-order u). The scalar is wiped. The
 * result is made on the stack and copied out after the wipe, so output may be input. */
napi_value talos_x25519(napi_env env, napi_callback_info info) {
  call_t c;
  if (!read_key_call(env, info, 2 * KEY, KEY, "talos_native: x25519 needs 64 bytes in, 32 out", &c)) return NULL;
  uint8_t shared[KEY];
  const int nonzero = shared_secret(shared, c.in, c.in + KEY);
  OPENSSL_cleanse(c.in, 2 * KEY);
  memcpy(c.out, shared, KEY);
  OPENSSL_cleanse(shared, KEY);
  napi_value result;
  napi_get_boolean(env, nonzero == 1, &result);
  return result;
}

/* x25519Base(input, output): input = scalar (32 bytes), output = its public key. The scalar is
 * wiped; output may be input. */
napi_value talos_x25519_base(napi_env env, napi_callback_info info) {
  call_t c;
  if (!read_key_call(env, info, KEY, KEY, "talos_native: x25519Base needs 32 bytes in, 32 out", &c)) return NULL;
  uint8_t public_value[KEY];
  public_key(public_value, c.in);
  OPENSSL_cleanse(c.in, KEY);
  memcpy(c.out, public_value, KEY);
  return NULL;
}

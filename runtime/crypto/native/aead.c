/*
 * ChaCha20-Poly1305 (RFC 8439) on the OpenSSL inside Node, through its public EVP interface.
 *
 * Why: node:crypto builds a cipher object, its OpenSSL context and Buffers for every message;
 * for the few hundred bytes of a ratchet message that costs several times the cipher itself.
 * Here a call makes one context on a cipher fetched once per process, and frees it (OpenSSL
 * wipes a ChaCha context when it frees it).
 *
 * Arguments: keyNonce = key (32) || nonce (12), wiped before the call returns (unless the
 * arguments are not four Uint8Arrays: the caller wipes it then); aad; text; out, an array of the
 * caller's own (never one of the others) of exactly the result's length. Lengths are OpenSSL's
 * ints: the plaintext and the AAD at most INT_MAX - TAG and INT_MAX bytes.
 */
#include "native.h"
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <limits.h>
#include <pthread.h>

#define KEY 32
#define NONCE 12
#define TAG 16

static EVP_CIPHER *chacha;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static void fetch(void) {
  chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  if (chacha == NULL) ERR_clear_error();
}

const char *talos_aead_unavailable(void) {
  pthread_once(&fetch_once, fetch);
  return chacha == NULL ? "this OpenSSL has no ChaCha20-Poly1305" : NULL;
}

/* Reads the four arrays and checks their lengths; text_len is the plaintext's. */
static int read_aead(napi_env env, napi_callback_info info, int sealing, bytes_t a[4], size_t *text_len) {
  if (!read_arrays(env, info, 4, a)) return 0;
  const size_t in = a[2].len;
  const int fits = sealing ? 1 : in >= TAG;
  *text_len = sealing ? in : in - TAG;
  if (a[0].len < KEY + NONCE || a[1].len > INT_MAX || !fits || *text_len > INT_MAX - TAG || a[3].len != *text_len + (sealing ? TAG : 0)) {
    OPENSSL_cleanse(a[0].p, a[0].len < KEY + NONCE ? a[0].len : KEY + NONCE);
    napi_throw_range_error(env, "native_bad_call", "talos_native: chacha lengths out of range");
    return 0;
  }
  return 1;
}

/* One pass of the AEAD: 1 done, 0 the tag did not verify (opening), -1 OpenSSL failed. On
 * anything but 1, out is wiped and OpenSSL's error queue left empty (node:crypto reads it). */
static int run(const bytes_t a[4], size_t text_len, int sealing) {
  /* An empty output array may have no storage at all (NULL), which OpenSSL is never handed. */
  uint8_t none[1];
  uint8_t *out = a[3].len > 0 ? a[3].p : none;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n = 0, ok = ctx != NULL && EVP_CipherInit_ex2(ctx, chacha, a[0].p, a[0].p + KEY, sealing, NULL) == 1;
  OPENSSL_cleanse(a[0].p, KEY + NONCE);
  if (ok && !sealing) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, a[2].p + text_len) == 1;
  if (ok && a[1].len > 0) ok = EVP_CipherUpdate(ctx, NULL, &n, a[1].p, (int)a[1].len) == 1;
  if (ok && text_len > 0) ok = EVP_CipherUpdate(ctx, out, &n, a[2].p, (int)text_len) == 1;
  int result = -1;
  if (ok) result = EVP_CipherFinal_ex(ctx, out + text_len, &n) == 1 ? 1 : sealing ? -1 : 0;
  if (result == 1 && sealing && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, out + text_len) != 1) result = -1;
  EVP_CIPHER_CTX_free(ctx);
  if (result != 1) {
    OPENSSL_cleanse(out, a[3].len);
    ERR_clear_error();
  }
  return result;
}

/* chachaSeal(keyNonce, aad, plaintext, out): out = ciphertext || tag. */
napi_value talos_chacha_seal(napi_env env, napi_callback_info info) {
  bytes_t a[4];
  size_t text_len;
  if (!read_aead(env, info, 1, a, &text_len)) return NULL;
  if (run(a, text_len, 1) != 1) napi_throw_error(env, "native_failed", "talos_native: chacha seal failed");
  return NULL;
}

/* chachaOpen(keyNonce, aad, sealed, out) -> boolean: false (out wiped) when the tag does not verify. */
napi_value talos_chacha_open(napi_env env, napi_callback_info info) {
  bytes_t a[4];
  size_t text_len;
  if (!read_aead(env, info, 0, a, &text_len)) return NULL;
  const int result = run(a, text_len, 0);
  if (result < 0) {
    napi_throw_error(env, "native_failed", "talos_native: chacha open failed");
    return NULL;
  }
  napi_value verified;
  napi_get_boolean(env, result == 1, &verified);
  return verified;
}

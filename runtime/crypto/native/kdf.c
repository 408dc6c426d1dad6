/*
 * HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869) for short inputs, on the SHA-256 of the
 * OpenSSL inside Node (which uses the CPU's SHA extensions where it has them).
 *
 * Why: every ratchet message needs five HMACs of a few dozen bytes per side. node:crypto pays
 * ~2 us per HMAC to build its objects; the JavaScript SHA-256 (sha256-small.ts) pays ~0.2 us per
 * block, 14 blocks a message per side. Here one call does a whole KDF_CK or message-key HKDF.
 *
 * Each call names its input and output Uint8Arrays and the lengths in them; nothing is kept
 * between calls (no pointer outlives its call, so a detached or collected array is never read).
 * The input bytes used and every intermediate secret are wiped (OPENSSL_cleanse) before a call
 * returns; the caller wipes the output once it has copied the result out.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: the low-level API without EVP's lookups */
#include "native.h"
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 64
#define HASH 32
#define HKDF_MAX_LENGTH (255 * HASH)

typedef struct {
  SHA256_CTX inner, outer;
} schedule_t;

/* The HMAC key schedule: SHA-256 states after the ipad and opad blocks. Keys over one block are
 * not taken here (the caller takes another path for them). */
static void schedule(schedule_t *s, const uint8_t *key, size_t key_len) {
  uint8_t pad[BLOCK];
  memset(pad, 0, BLOCK);
  if (key_len > 0) memcpy(pad, key, key_len);
  for (int i = 0; i < BLOCK; i++) pad[i] ^= 0x36;
  SHA256_Init(&s->inner);
  SHA256_Update(&s->inner, pad, BLOCK);
  for (int i = 0; i < BLOCK; i++) pad[i] ^= 0x36 ^ 0x5c;
  SHA256_Init(&s->outer);
  SHA256_Update(&s->outer, pad, BLOCK);
  OPENSSL_cleanse(pad, BLOCK);
}

/* The schedule of an all-zero (or empty) key, every message-key HKDF's salt: computed once,
 * read-only after, so every thread shares it. */
static schedule_t zero_key;
static pthread_once_t zero_key_once = PTHREAD_ONCE_INIT;
static void init_zero_key(void) { schedule(&zero_key, NULL, 0); }

/* HMAC of a || b || c (any may be empty) under a schedule. */
static void mac3(const schedule_t *s, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, const uint8_t *c, size_t c_len,
                 uint8_t out[HASH]) {
  SHA256_CTX ctx = s->inner;
  SHA256_Update(&ctx, a, a_len);
  SHA256_Update(&ctx, b, b_len);
  SHA256_Update(&ctx, c, c_len);
  SHA256_Final(out, &ctx);
  ctx = s->outer;
  SHA256_Update(&ctx, out, HASH);
  SHA256_Final(out, &ctx);
  OPENSSL_cleanse(&ctx, sizeof ctx);
}

/* hmacEach(input, output, keyLen, count, messageLen): input = key || count messages of
 * messageLen bytes; output = count MACs of 32 bytes. */
napi_value talos_hmac_each(napi_env env, napi_callback_info info) {
  call_t c;
  if (!read_call(env, info, 3, &c)) return NULL;
  const size_t key_len = c.n[0], count = c.n[1], msg_len = c.n[2];
  if (key_len > BLOCK || key_len + count * msg_len > c.in_len || count * HASH > c.out_len) {
    napi_throw_range_error(env, "native_bad_call", "talos_native: hmacEach lengths out of range");
    return NULL;
  }
  schedule_t sch;
  schedule(&sch, c.in, key_len);
  for (size_t i = 0; i < count; i++) mac3(&sch, c.in + key_len + i * msg_len, msg_len, NULL, 0, NULL, 0, c.out + i * HASH);
  OPENSSL_cleanse(&sch, sizeof sch);
  OPENSSL_cleanse(c.in, key_len + count * msg_len);
  return NULL;
}

/* hkdf(input, output, ikmLen, saltLen, infoLen, length): input = ikm || salt || info; output =
 * OKM. An empty salt is HashLen zeros (RFC 5869 2.2), which HMAC pads to the same block as no
 * key at all. */
napi_value talos_hkdf(napi_env env, napi_callback_info info) {
  call_t c;
  if (!read_call(env, info, 4, &c)) return NULL;
  const size_t ikm_len = c.n[0], salt_len = c.n[1], info_len = c.n[2], length = c.n[3];
  if (salt_len > BLOCK || ikm_len + salt_len + info_len > c.in_len || length > c.out_len || length > HKDF_MAX_LENGTH) {
    napi_throw_range_error(env, "native_bad_call", "talos_native: hkdf lengths out of range");
    return NULL;
  }
  const uint8_t *ikm = c.in, *salt = c.in + ikm_len, *inf = c.in + ikm_len + salt_len;
  schedule_t sch;
  uint8_t prk[HASH], t[HASH];
  uint8_t nonzero = 0;
  for (size_t i = 0; i < salt_len; i++) nonzero |= salt[i];
  if (nonzero) {
    schedule(&sch, salt, salt_len);
  } else {
    pthread_once(&zero_key_once, init_zero_key);
    sch = zero_key;
  }
  mac3(&sch, ikm, ikm_len, NULL, 0, NULL, 0, prk); /* extract */
  schedule(&sch, prk, HASH);
  size_t done = 0, t_len = 0;
  for (uint8_t counter = 1; done < length; counter++) { /* expand: T(i) = HMAC(PRK, T(i-1) || info || i) */
    mac3(&sch, t, t_len, inf, info_len, &counter, 1, t);
    t_len = HASH;
    const size_t take = length - done < HASH ? length - done : HASH;
    memcpy(c.out + done, t, take);
    done += take;
  }
  OPENSSL_cleanse(&sch, sizeof sch);
  OPENSSL_cleanse(prk, HASH);
  OPENSSL_cleanse(t, HASH);
  OPENSSL_cleanse(c.in, ikm_len + salt_len + info_len);
  return NULL;
}

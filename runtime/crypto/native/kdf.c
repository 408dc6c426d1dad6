/*
 * HMAC-SHA-256 (RFC 2104) and HKDF-SHA-256 (RFC 5869) for short inputs, on the SHA-256 of the
 * OpenSSL inside Node (which uses the CPU's SHA extensions where it has them).
 *
 * Why: every ratchet message needs five HMACs of a few dozen bytes per side. node:crypto pays
 * ~2 us per HMAC to build its objects; the JavaScript SHA-256 (sha256-small.ts) pays ~0.2 us per
 * block, 14 blocks a message per side. Here one call does a whole KDF_CK or message-key HKDF.
 *
 * Calls carry no arguments: the bytes go through two buffers, and the lengths through a third,
 * that the JavaScript side binds once per thread (Node-API instance data), so a call converts
 * nothing. The input buffer and
 * every intermediate secret are wiped (OPENSSL_cleanse) before a call returns; the caller
 * wipes the output buffer once it has copied the result out.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: the low-level API without EVP's lookups */
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define HASH 32
#define HKDF_MAX_LENGTH (255 * HASH)
#define LEN_SLOTS 4

typedef struct {
  SHA256_CTX inner, outer;
} schedule_t;

typedef struct {
  uint8_t *in, *out;
  uint32_t *len; /* the lengths of the call, LEN_SLOTS of them */
  size_t in_len, out_len;
  napi_ref in_ref, out_ref, len_ref;
  schedule_t zero_key; /* the schedule of an all-zero (or empty) key: every message-key HKDF's salt */
} scratch_t;

/* The HMAC key schedule: SHA-256 states after the ipad and opad blocks. Keys over one block are
 * not supported here (the caller takes another path for them). */
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

static scratch_t *scratch_of(napi_env env) {
  scratch_t *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok || s == NULL || s->in == NULL) {
    napi_throw_error(env, "native_unbound", "talos_kdf: bind() was not called");
    return NULL;
  }
  return s;
}

static void finalize_scratch(napi_env env, void *data, void *hint) {
  (void)hint;
  scratch_t *s = data;
  if (s->in_ref) napi_delete_reference(env, s->in_ref);
  if (s->out_ref) napi_delete_reference(env, s->out_ref);
  if (s->len_ref) napi_delete_reference(env, s->len_ref);
  free(s);
}

/* bind(input: Uint8Array, output: Uint8Array, lengths: Uint32Array): this thread's buffers. */
static napi_value bind(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  scratch_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    napi_throw_error(env, "native_oom", "talos_kdf: out of memory");
    return NULL;
  }
  napi_typedarray_type type_in, type_out, type_len;
  napi_value ab;
  size_t offset, len_count;
  if (argc < 3 || napi_get_typedarray_info(env, argv[0], &type_in, &s->in_len, (void **)&s->in, &ab, &offset) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &type_out, &s->out_len, (void **)&s->out, &ab, &offset) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type_len, &len_count, (void **)&s->len, &ab, &offset) != napi_ok ||
      type_in != napi_uint8_array || type_out != napi_uint8_array || type_len != napi_uint32_array || len_count < LEN_SLOTS) {
    free(s);
    napi_throw_type_error(env, "native_bad_call", "talos_kdf: bind(input, output, lengths) takes two Uint8Arrays and a Uint32Array(4)");
    return NULL;
  }
  schedule(&s->zero_key, NULL, 0);
  /* The references keep both buffers (and so the pointers) alive as long as this thread. */
  napi_create_reference(env, argv[0], 1, &s->in_ref);
  napi_create_reference(env, argv[1], 1, &s->out_ref);
  napi_create_reference(env, argv[2], 1, &s->len_ref);
  napi_set_instance_data(env, s, finalize_scratch, NULL);
  return NULL;
}

/* hmacEach(), lengths [keyLen, count, messageLen]: input = key || count messages of messageLen
 * bytes; output = count MACs of 32 bytes. */
static napi_value hmac_each(napi_env env, napi_callback_info info) {
  (void)info;
  scratch_t *s = scratch_of(env);
  if (s == NULL) return NULL;
  const size_t key_len = s->len[0], count = s->len[1], msg_len = s->len[2];
  if (key_len > BLOCK || key_len + count * msg_len > s->in_len || count * HASH > s->out_len) {
    napi_throw_range_error(env, "native_bad_call", "talos_kdf: hmacEach lengths out of range");
    return NULL;
  }
  schedule_t sch;
  schedule(&sch, s->in, key_len);
  for (size_t i = 0; i < count; i++) mac3(&sch, s->in + key_len + i * msg_len, msg_len, NULL, 0, NULL, 0, s->out + i * HASH);
  OPENSSL_cleanse(&sch, sizeof sch);
  OPENSSL_cleanse(s->in, key_len + count * msg_len);
  return NULL;
}

/* hkdf(), lengths [ikmLen, saltLen, infoLen, length]: input = ikm || salt || info; output =
 * OKM. An empty salt is HashLen zeros (RFC 5869 2.2), which HMAC pads to the same block as no
 * key at all. */
static napi_value hkdf(napi_env env, napi_callback_info info) {
  (void)info;
  scratch_t *s = scratch_of(env);
  if (s == NULL) return NULL;
  const size_t ikm_len = s->len[0], salt_len = s->len[1], info_len = s->len[2], length = s->len[3];
  if (salt_len > BLOCK || ikm_len + salt_len + info_len > s->in_len || length > s->out_len || length > HKDF_MAX_LENGTH) {
    napi_throw_range_error(env, "native_bad_call", "talos_kdf: hkdf lengths out of range");
    return NULL;
  }
  const uint8_t *ikm = s->in, *salt = s->in + ikm_len, *inf = s->in + ikm_len + salt_len;
  schedule_t sch;
  uint8_t prk[HASH], t[HASH];
  int zero_salt = 1;
  for (size_t i = 0; i < salt_len; i++) zero_salt &= salt[i] == 0;
  if (zero_salt) sch = s->zero_key;
  else schedule(&sch, salt, salt_len);
  mac3(&sch, ikm, ikm_len, NULL, 0, NULL, 0, prk); /* extract */
  schedule(&sch, prk, HASH);
  size_t done = 0, t_len = 0;
  for (uint8_t counter = 1; done < length; counter++) { /* expand: T(i) = HMAC(PRK, T(i-1) || info || i) */
    mac3(&sch, t, t_len, inf, info_len, &counter, 1, t);
    t_len = HASH;
    const size_t take = length - done < HASH ? length - done : HASH;
    memcpy(s->out + done, t, take);
    done += take;
  }
  OPENSSL_cleanse(&sch, sizeof sch);
  OPENSSL_cleanse(prk, HASH);
  OPENSSL_cleanse(t, HASH);
  OPENSSL_cleanse(s->in, ikm_len + salt_len + info_len);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct { const char *name; napi_callback fn; } fns[] = {{"bind", bind}, {"hmacEach", hmac_each}, {"hkdf", hkdf}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}
